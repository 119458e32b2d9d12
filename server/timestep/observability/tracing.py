"""Optional OpenTelemetry tracing, exported with OTLP over HTTP (`serve --otlp-endpoint`).

- every RPC is a SERVER span named after its method (`timestep.v1.RunService/CreateRun`), a child
  of the caller's span when the call carries W3C `traceparent` metadata;
- a run's first segment is a span (`run segment`, with `timestep.run_id`) whose children are the
  Agents SDK's spans: agent turns, model calls (`model gpt-4.1`, token usage), tool calls
  (`tool send_email`), handoffs and guardrails; a resumed segment continues the SDK's trace, so
  its top SDK span carries `timestep.run_id` instead. A segment started by a CreateRun or
  ResumeRun in this process nests in that RPC's span.

Inputs, outputs and tool arguments are not recorded: they may hold personal data or secrets.
Needs the `otel` extra (`pip install 'timestep[otel]'`); nothing here loads without it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import grpc
from agents import set_trace_processors
from agents.tracing import (
    AgentSpanData,
    FunctionSpanData,
    GenerationSpanData,
    GuardrailSpanData,
    HandoffSpanData,
    ResponseSpanData,
    Span,
    Trace,
    TracingProcessor,
    add_trace_processor,
)

from timestep.observability.context import run_id_var
from timestep.observability.interceptor import OPEN_METHOD_PREFIXES, code_name, response_run_id, with_behavior
from timestep.settings import ConfigurationError

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
except ImportError as missing:  # pragma: no cover - depends on the installation
    raise ConfigurationError(
        f"OpenTelemetry tracing needs the otel extra ({missing.name} is missing): "
        "pip install 'timestep[otel]'"
    ) from missing

log = logging.getLogger(__name__)


class Tracing:
    """A tracer provider of this service's own (the process's global one is left alone)."""

    def __init__(self, endpoint: str, service_name: str = "timestep") -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("timestep")

    def start(self, *, keep_openai_export: bool) -> None:
        """Receive the Agents SDK's spans; unless `keep_openai_export`, they are no longer sent to
        OpenAI's trace backend (the SDK's default)."""
        _SDK_SPANS.attach(self.tracer, keep_openai_export=keep_openai_export)

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        return TracingInterceptor(self.tracer)

    def shutdown(self) -> None:
        """Stop receiving spans, and export the ones not exported yet."""
        _SDK_SPANS.detach(self.tracer)
        self.provider.shutdown()


# ----- RPC spans -----------------------------------------------------------------------------


class TracingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        method = details.method.lstrip("/")
        service, _, name = method.partition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        carrier = {key: value for key, value in details.invocation_metadata or () if isinstance(value, str)}
        parent = propagate.extract(carrier)
        tracer = self._tracer

        if handler.unary_unary is not None:
            unary = handler.unary_unary

            async def traced_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                # Current while the call runs, so work it starts (a waited-for segment) nests in it.
                with tracer.start_as_current_span(
                    method, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
                ) as span:
                    try:
                        response = await unary(request, context)
                    except BaseException:
                        _end_rpc(span, context, request, grpc.StatusCode.UNKNOWN)
                        raise
                    _end_rpc(span, context, request, grpc.StatusCode.OK, response_run_id(response))
                    return response

            return with_behavior(handler, traced_unary)
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            async def traced_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                # Not made current: a stream's steps run in several tasks.
                span = tracer.start_span(
                    method, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
                )
                ended = grpc.StatusCode.UNKNOWN
                try:
                    async for response in stream(request, context):
                        yield response
                    ended = grpc.StatusCode.OK
                finally:
                    _end_rpc(span, context, request, ended)
                    span.end()

            return with_behavior(handler, traced_stream)
        return handler


def _end_rpc(
    span: trace.Span,
    context: grpc.aio.ServicerContext,
    request: Any,
    default: grpc.StatusCode,
    response_run: str = "",
) -> None:
    """Record how the RPC ended (`default` unless the servicer set a status) and its run."""
    name = code_name(context, default)
    span.set_attribute("rpc.grpc.status_code", name)
    run_id = response_run or str(getattr(request, "run_id", "") or "")
    if run_id:
        span.set_attribute("timestep.run_id", run_id)
    if name != "OK":
        span.set_status(trace.Status(trace.StatusCode.ERROR, name))


# ----- Agents SDK spans ----------------------------------------------------------------------


class _SdkSpans(TracingProcessor):
    """The Agents SDK's traces and spans as OpenTelemetry spans. Registered with the SDK once per
    process; forwards to the tracer of the service that is running (none: drops them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registered = False
        self._tracer: trace.Tracer | None = None
        self._open: dict[str, trace.Span] = {}

    def attach(self, tracer: trace.Tracer, *, keep_openai_export: bool) -> None:
        with self._lock:
            self._tracer = tracer
            if not self._registered:
                (add_trace_processor if keep_openai_export else _replace_trace_processors)(self)
                self._registered = True

    def detach(self, tracer: trace.Tracer) -> None:
        with self._lock:
            if self._tracer is tracer:
                self._tracer = None
                self._open.clear()

    def _start(
        self, key: str, parent_key: str | None, name: str, attributes: dict[str, Any], at: str | None
    ) -> None:
        with self._lock:
            if self._tracer is None:
                return
            parent = self._open.get(parent_key) if parent_key else None
            context = trace.set_span_in_context(parent) if parent else otel_context.get_current()
            self._open[key] = self._tracer.start_span(
                name, context=context, attributes=attributes, start_time=_nanoseconds(at)
            )

    def _end(self, key: str, at: str | None, error: str = "", **attributes: Any) -> None:
        with self._lock:
            span = self._open.pop(key, None)
        if span is None:
            return
        for name, value in attributes.items():
            if name == "span_name":
                span.update_name(value)
            elif value not in (None, ""):
                span.set_attribute(name, value)
        if error:
            span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        span.end(end_time=_nanoseconds(at))

    def on_trace_start(self, trace_: Trace) -> None:
        run_id = run_id_var.get()
        attributes = {"timestep.run_id": run_id} if run_id else {}
        self._start(trace_.trace_id, None, "run segment", attributes, None)

    def on_trace_end(self, trace_: Trace) -> None:
        self._end(trace_.trace_id, None)

    def on_span_start(self, span: Span[Any]) -> None:
        name, attributes = _describe(span.span_data)
        if span.parent_id is None and run_id_var.get():
            # A segment that resumes a RunState continues the SDK trace without starting it again:
            # its top spans nest in the current span (the RPC's), and name the run themselves.
            attributes["timestep.run_id"] = run_id_var.get()
        self._start(span.span_id, span.parent_id or span.trace_id, name, attributes, span.started_at)

    def on_span_end(self, span: Span[Any]) -> None:
        error = span.error["message"] if span.error else ""
        self._end(span.span_id, span.ended_at, error, **_results(span.span_data))

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


_SDK_SPANS = _SdkSpans()


def _replace_trace_processors(processor: TracingProcessor) -> None:
    set_trace_processors([processor])


def _describe(data: Any) -> tuple[str, dict[str, Any]]:
    """A span's name and its attributes known at its start."""
    if isinstance(data, AgentSpanData):
        return f"agent {data.name}", {"gen_ai.agent.name": data.name}
    if isinstance(data, ResponseSpanData | GenerationSpanData):
        return "model call", {"gen_ai.operation.name": "chat"}
    if isinstance(data, FunctionSpanData):
        return f"tool {data.name}", {"gen_ai.tool.name": data.name}
    if isinstance(data, HandoffSpanData):
        return "handoff", {}
    if isinstance(data, GuardrailSpanData):
        return f"guardrail {data.name}", {}
    return str(getattr(data, "type", "span")), {}


def _results(data: Any) -> dict[str, Any]:
    """Attributes known when a span ends (the model that answered, token usage, …)."""
    if isinstance(data, ResponseSpanData):
        response = data.response
        usage = getattr(response, "usage", None)
        model = str(getattr(response, "model", "") or "")
        return {
            "span_name": f"model {model}" if model else "model call",
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": getattr(usage, "input_tokens", None),
            "gen_ai.usage.output_tokens": getattr(usage, "output_tokens", None),
        }
    if isinstance(data, GenerationSpanData):
        usage = data.usage or {}
        return {
            "span_name": f"model {data.model}" if data.model else "model call",
            "gen_ai.response.model": data.model or "",
            "gen_ai.usage.input_tokens": usage.get("input_tokens"),
            "gen_ai.usage.output_tokens": usage.get("output_tokens"),
        }
    if isinstance(data, HandoffSpanData):
        return {"timestep.handoff.from": data.from_agent or "", "timestep.handoff.to": data.to_agent or ""}
    if isinstance(data, GuardrailSpanData):
        return {"timestep.guardrail.triggered": data.triggered}
    return {}


def _nanoseconds(iso: str | None) -> int | None:
    return int(datetime.fromisoformat(iso).timestamp() * 1e9) if iso else None
