"""The server interceptor: per-RPC metrics and access logs, request/run ids for log lines, and
draining (new RPCs refused, open streams ended with UNAVAILABLE so clients reconnect elsewhere or
after the restart).

Health checking and reflection pass through untouched, so a health Watch sees NOT_SERVING while
the service drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from timestep.observability.context import request_id_var, run_id_var
from timestep.observability.metrics import Metrics

log = logging.getLogger("timestep.rpc")

SHUTTING_DOWN = "the service is shutting down; reconnect to continue from your last sequence"
REQUEST_ID_HEADER = "x-request-id"
# Health checking and reflection: open to load balancers and grpcurl, never refused while draining.
OPEN_METHOD_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


def _retrieve(step: asyncio.Future[Any]) -> None:
    """Mark a stream step's outcome as seen. A client that cancels just as the stream ends leaves
    a step finished with StopAsyncIteration that nobody reads, which asyncio would otherwise log
    at ERROR ("Task exception was never retrieved")."""
    if not step.cancelled():
        step.exception()


class Drain:
    """Set once the service starts shutting down."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    @property
    def draining(self) -> bool:
        return self.event.is_set()

    def begin(self) -> None:
        self.event.set()


def code_name(context: grpc.aio.ServicerContext, default: grpc.StatusCode) -> str:
    """The name of the status the RPC ended with (`default` when none was set)."""
    code: Any = context.code()
    if code is None:
        return str(default.name)
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    for candidate in grpc.StatusCode:  # some grpcio versions report the numeric code
        if candidate.value[0] == code:
            return str(candidate.name)
    return str(code)


def _bind_ids(request: Any, context: grpc.aio.ServicerContext) -> None:
    metadata = dict(context.invocation_metadata() or ())
    header = metadata.get(REQUEST_ID_HEADER, "")
    request_id = header if isinstance(header, str) else ""
    request_id = request_id or str(getattr(request, "request_id", "") or "")
    if request_id:
        request_id_var.set(request_id)
    run_id = str(getattr(request, "run_id", "") or "")
    if run_id:
        run_id_var.set(run_id)


def response_run_id(response: Any) -> str:
    """The id of the run a response carries ('' if none)."""
    run = getattr(response, "run", None)
    return str(getattr(run, "id", "") or "")


def with_behavior(
    handler: grpc.RpcMethodHandler,
    behavior: Callable[..., Any],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """A handler of the same kind and (de)serializers as `handler`, running `behavior` (for
    interceptors that wrap what a method does), optionally reading requests another way."""
    if handler.unary_unary is not None:
        make = grpc.unary_unary_rpc_method_handler
    elif handler.unary_stream is not None:
        make = grpc.unary_stream_rpc_method_handler
    elif handler.stream_stream is not None:
        make = grpc.stream_stream_rpc_method_handler
    else:
        make = grpc.stream_unary_rpc_method_handler
    return make(
        behavior,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class ServiceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, metrics: Metrics, drain: Drain) -> None:
        self._metrics = metrics
        self._drain = drain

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        full_method: str = handler_call_details.method
        if handler is None or full_method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        method = full_method.lstrip("/")
        if handler.unary_unary is not None:
            return with_behavior(handler, self._unary(method, handler.unary_unary))
        if handler.unary_stream is not None:
            return with_behavior(handler, self._stream(method, handler.unary_stream))
        return handler

    def _finish(self, method: str, code: str, start: float, run_id: str = "") -> None:
        seconds = time.perf_counter() - start
        self._metrics.record_rpc(method, code, seconds)
        extra = {"rpc_method": method, "code": code, "duration_ms": round(seconds * 1000, 3)}
        if run_id:
            extra["run_id"] = run_id
        log.info("%s %s %.1fms", method, code, seconds * 1000, extra=extra)

    def _unary(
        self, method: str, behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
    ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            _bind_ids(request, context)
            if self._drain.draining:
                self._finish(method, grpc.StatusCode.UNAVAILABLE.name, start)
                await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
            code = grpc.StatusCode.UNKNOWN.name
            run_id = ""
            try:
                response = await behavior(request, context)
                code = code_name(context, grpc.StatusCode.OK)
                run_id = response_run_id(response)
                return response
            except grpc.aio.AbortError:
                code = code_name(context, grpc.StatusCode.UNKNOWN)
                raise
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED.name
                raise
            finally:
                self._finish(method, code, start, run_id)

        return handle

    def _stream(
        self, method: str, behavior: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]
    ) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
        drain = self._drain
        active = self._metrics.active_streams.labels(method)

        async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            start = time.perf_counter()
            _bind_ids(request, context)
            if drain.draining:
                self._finish(method, grpc.StatusCode.UNAVAILABLE.name, start)
                await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
            code = grpc.StatusCode.UNKNOWN.name
            responses = aiter(behavior(request, context))
            draining = asyncio.ensure_future(drain.event.wait())
            following: asyncio.Future[Any] | None = None
            active.inc()
            try:
                while True:
                    following = asyncio.ensure_future(anext(responses))
                    following.add_done_callback(_retrieve)
                    await asyncio.wait((following, draining), return_when=asyncio.FIRST_COMPLETED)
                    if not following.done():  # the service is draining: end the stream
                        following.cancel()
                        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                            await following
                        code = grpc.StatusCode.UNAVAILABLE.name
                        await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
                    try:
                        response = following.result()
                    except StopAsyncIteration:
                        code = code_name(context, grpc.StatusCode.OK)
                        return
                    following = None
                    yield response
            except grpc.aio.AbortError:
                if code != grpc.StatusCode.UNAVAILABLE.name:
                    code = code_name(context, grpc.StatusCode.UNKNOWN)
                raise
            except (asyncio.CancelledError, GeneratorExit):
                code = grpc.StatusCode.CANCELLED.name
                raise
            finally:
                active.dec()
                draining.cancel()
                if following is not None and not following.done():
                    following.cancel()
                else:
                    with contextlib.suppress(Exception):
                        await responses.aclose()  # type: ignore[attr-defined]
                self._finish(method, code, start)

        return handle
