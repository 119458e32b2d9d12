"""Connect endpoints for the RPCs the gRPC server serves: the same method handlers behind the
same interceptors (tracing, metrics and access logs, draining, API keys, request checks), so an
RPC behaves and fails identically over both transports.

Each Connect call resolves its method through the interceptor chain, as grpc.aio does, and runs
the handler with a `ConnectCallContext`: the small part of grpc's ServicerContext our handlers
and interceptors use (metadata from the HTTP headers, the deadline from Connect-Timeout-Ms, and
aborts). An abort becomes a ConnectError with the same code, message and google.rpc details
(ErrorInfo, BadRequest, PreconditionFailure, RetryInfo).
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from connectrpc._server_shared import EndpointServerStream, EndpointUnary
from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import Endpoint
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.rpc import status_pb2
from protobuf.wkt import Any as AnyDetail

# grpc's status codes by name → Connect's (grpc spells CANCELLED with two Ls).
_CONNECT_CODES = {code.name: code for code in Code} | {"CANCELLED": Code.CANCELED}
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class _Aborted(grpc.aio.AbortError):  # type: ignore[misc]
    """What an abort raises: grpc's own type, so interceptors see an abort as they would in grpc."""


class ConnectCallContext:
    """The parts of grpc.aio.ServicerContext that the service's handlers and interceptors use."""

    def __init__(self, request: RequestContext[Any, Any]) -> None:
        self._request = request
        self._metadata = tuple((name.lower(), value) for name, value in request.request_headers.allitems())
        timeout_ms = request.timeout_ms
        self._deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._status_details = b""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        self._code, self._details = code, details
        for key, value in trailing_metadata or ():
            if key == STATUS_DETAILS_KEY:
                self._status_details = value
        raise _Aborted(details)

    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        await self.abort(status.code, status.details, status.trailing_metadata)

    def error(self) -> ConnectError:
        """The ConnectError for how the call ended: the code and message it aborted with, and
        the google.rpc details of the status it gave."""
        code = self._code or grpc.StatusCode.UNKNOWN
        details: list[ErrorDetail] = []
        if self._status_details:
            status = status_pb2.Status.FromString(self._status_details)
            details = [ErrorDetail(AnyDetail(type_url=d.type_url, value=d.value)) for d in status.details]
        return ConnectError(_CONNECT_CODES[code.name], self._details, details)

    def not_ok(self) -> ConnectError | None:
        """The error a handler that returned normally set (health's Check sets NOT_FOUND)."""
        if self._code is None or self._code == grpc.StatusCode.OK:
            return None
        return self.error()


@dataclass(frozen=True)
class _CallDetails:
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


# The endpoints we serve: unary and server-streaming methods.
ConnectEndpoint = EndpointUnary[Any, Any] | EndpointServerStream[Any, Any]
Continuation = Callable[[Any], Awaitable[grpc.RpcMethodHandler | None]]


class HandlerCollector:
    """Stands in for a grpc server when the services register: keeps their method handlers."""

    def __init__(self) -> None:
        self._generic: list[grpc.GenericRpcHandler] = []
        self._registered: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, generic_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._generic.extend(generic_handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        for name, handler in handlers.items():
            self._registered[f"/{service}/{name}"] = handler

    async def lookup(self, details: Any) -> grpc.RpcMethodHandler | None:
        """The handler of the method `details` names, as the grpc server would find it."""
        if (handler := self._registered.get(details.method)) is not None:
            return handler
        for generic in self._generic:
            if (handler := generic.service(details)) is not None:
                return handler
        return None


def connect_endpoints(
    services: Sequence[ServiceDescriptor],
    handlers: HandlerCollector,
    interceptors: Sequence[grpc.aio.ServerInterceptor],
) -> dict[str, ConnectEndpoint]:
    """A Connect endpoint for every unary and server-streaming method of `services`, keyed by
    its path ("/timestep.v1.RunService/CreateRun")."""
    chain: Continuation = handlers.lookup
    for interceptor in reversed(interceptors):
        chain = functools.partial(interceptor.intercept_service, chain)

    async def resolve(path: str, context: ConnectCallContext) -> grpc.RpcMethodHandler:
        handler = await chain(_CallDetails(path, context.invocation_metadata()))
        if handler is None:
            raise ConnectError(Code.UNIMPLEMENTED, f"{path} is not served")
        return handler

    endpoints: dict[str, ConnectEndpoint] = {}
    for service in services:
        for method in service.methods:
            if method.client_streaming:
                continue  # reflection's bidirectional stream: gRPC only
            path = f"/{service.full_name}/{method.name}"
            info = _method_info(service, method)
            if method.server_streaming:
                endpoints[path] = Endpoint.server_stream(info, _streaming(path, resolve))
            else:
                endpoints[path] = Endpoint.unary(info, _unary(path, resolve))
    return endpoints


Resolve = Callable[[str, ConnectCallContext], Awaitable[grpc.RpcMethodHandler]]


def _unary(path: str, resolve: Resolve) -> Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]]:
    async def call(request: Any, request_context: RequestContext[Any, Any]) -> Any:
        context = ConnectCallContext(request_context)
        try:
            handler = await resolve(path, context)
            response = await handler.unary_unary(request, context)
        except grpc.aio.AbortError:
            raise context.error() from None
        if (error := context.not_ok()) is not None:
            raise error
        return response

    return call


def _streaming(path: str, resolve: Resolve) -> Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]]:
    async def call(request: Any, request_context: RequestContext[Any, Any]) -> AsyncIterator[Any]:
        context = ConnectCallContext(request_context)
        try:
            handler = await resolve(path, context)
            async for response in handler.unary_stream(request, context):
                yield response
        except grpc.aio.AbortError:
            raise context.error() from None

    return call


def _method_info(service: ServiceDescriptor, method: MethodDescriptor) -> MethodInfo[Any, Any]:
    return MethodInfo(
        name=method.name,
        service_name=service.full_name,
        input=message_factory.GetMessageClass(method.input_type),
        output=message_factory.GetMessageClass(method.output_type),
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=StreamType.SERVER_STREAM if method.server_streaming else StreamType.UNARY,
    )
