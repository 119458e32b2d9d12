"""Every service's handlers served over gRPC by one generic adapter: the request is parsed (or
refused as malformed) and checked, the handler gets a `CallContext` from the auth interceptor's
tenant and the call's deadline, and a domain error becomes its status."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message

from timestep.api.auth import current_tenant
from timestep.api.errors import describe, domain_error
from timestep.api.grpc.status import to_rpc_status
from timestep.api.handlers import Service, call_server_streaming, call_unary
from timestep.api.handlers.context import CallContext
from timestep.errors import InvalidArgumentError
from timestep.observability.interceptor import with_behavior
from timestep.settings import Limits


def generic_handler(service: Service, limits: Limits) -> grpc.GenericRpcHandler:
    """The gRPC handler of every RPC of `service`."""
    return grpc.method_handlers_generic_handler(
        service.descriptor.full_name,
        {method.name: _method_handler(service, method, limits) for method in service.descriptor.methods},
    )


def _method_handler(service: Service, method: MethodDescriptor, limits: Limits) -> grpc.RpcMethodHandler:
    handler = service.handler(method)
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    serializers: dict[str, Any] = {
        "request_deserializer": request_type.FromString,
        "response_serializer": response_type.SerializeToString,
    }

    async def unary(request: Message | MalformedRequest, context: grpc.aio.ServicerContext) -> Message:
        try:
            return await call_unary(handler, _parsed(request), _call_context(context), limits)
        except Exception as error:
            await _abort(context, error, request)
            raise AssertionError("abort_with_status returned") from error

    async def server_streaming(
        request: Message | MalformedRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Message]:
        try:
            # The context is built before the first response: later steps run in other tasks.
            call = _call_context(context)
            async for response in call_server_streaming(handler, _parsed(request), call, limits):
                yield response
        except Exception as error:
            await _abort(context, error, request)

    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(server_streaming, **serializers)
    return grpc.unary_unary_rpc_method_handler(unary, **serializers)


def _call_context(context: grpc.aio.ServicerContext) -> CallContext:
    remaining = context.time_remaining()
    deadline = None if remaining is None else datetime.now(UTC) + timedelta(seconds=remaining)
    return CallContext(tenant=current_tenant(), deadline=deadline)


async def _abort(context: grpc.aio.ServicerContext, error: Exception, request: object) -> None:
    """End the call with `error`'s status; re-raises an error that is no domain error (a bug:
    gRPC answers UNKNOWN)."""
    subject = request if isinstance(request, Message) else None
    await context.abort_with_status(to_rpc_status(describe(domain_error(error), subject)))


@dataclass(frozen=True)
class MalformedRequest:
    """What a handler's adapter receives instead of a request that could not be parsed."""

    problem: str


def _parsed(request: Message | MalformedRequest) -> Message:
    if isinstance(request, MalformedRequest):
        raise InvalidArgumentError(
            f"The request could not be read ({request.problem}). Send a serialized message of the "
            "method's request type; string fields must be valid UTF-8.",
            reason="MALFORMED_REQUEST",
        )
    return request


class MalformedRequests(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Requests that cannot be parsed (a string field that is not UTF-8, truncated bytes) reach
    the adapter as a MalformedRequest, which it answers with INVALID_ARGUMENT; gRPC itself would
    answer UNKNOWN."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer

        def parse_or_describe(data: bytes) -> Any:
            try:
                return parse(data)
            except DecodeError as error:
                return MalformedRequest(str(error))

        behavior = (
            handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
        )
        return with_behavior(handler, behavior, request_deserializer=parse_or_describe)
