"""OpenTelemetry tracing with OTLP/HTTP to a fake collector: a SERVER span per RPC that continues
the caller's W3C trace, and each run segment's Agents SDK spans (agent, model call with token
usage, tool call) nested under the waiting RPC; no inputs, outputs or arguments recorded."""

from __future__ import annotations

from timestep.runtime.providers import ModelConfig
from timestep_client import RunStatus, TimestepClient
from timestep_client.v1 import runs_pb2

from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.fakes.otlp import FakeCollector, ReceivedSpan
from timestep_testing.helpers import EMAIL_ARGS, WAIT, pending

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SECRET_INPUT = "Tell Bob the door code is 7741"


async def test_rpcs_segments_model_and_tool_calls_become_spans(
    start_service: StartService, model_config: ModelConfig, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_traced"), text("Bob knows."))
    async with (
        FakeCollector() as collector,
        start_service(
            model_config, otlp_endpoint=collector.endpoint, otel_service_name="timestep-test"
        ) as service,
        TimestepClient(f"127.0.0.1:{service.port}") as client,
    ):
        created = await client.runs.CreateRun(
            runs_pb2.CreateRunRequest(agent="assistant", input=SECRET_INPUT, wait=True),
            metadata=(("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"),),
            timeout=WAIT,
        )
        run = created.run
        assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
        await client.approve(run.id, pending(run)[0].id)
        resumed = await client.resume(run.id, wait=True, timeout=WAIT)
        assert resumed.status == RunStatus.RUN_STATUS_COMPLETED
        # Stopping the service exported everything still buffered.

    create = collector.named("timestep.v1.RunService/CreateRun")
    assert len(create) == 1
    assert (create[0].trace_id, create[0].parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    assert create[0].attributes["rpc.grpc.status_code"] == "OK"
    assert create[0].attributes["timestep.run_id"] == run.id
    assert create[0].service_name == "timestep-test"

    resume = collector.named("timestep.v1.RunService/ResumeRun")
    segment = collector.named("run segment")
    assert [span.attributes["timestep.run_id"] for span in segment] == [run.id]
    # The first segment ran for the waiting CreateRun: it continues that call's trace.
    assert segment[0].parent_span_id == create[0].span_id
    by_id = {span.span_id: span for span in collector.spans}

    def root_of(span: ReceivedSpan) -> ReceivedSpan:
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
        return span

    models = [span for span in collector.spans if span.name.startswith("model ")]
    assert [root_of(span).name for span in models] == [create[0].name, resume[0].name]
    assert all(span.attributes["gen_ai.usage.output_tokens"] > 0 for span in models)
    assert all(span.attributes["gen_ai.response.model"] == "gpt-4.1" for span in models)
    # Approved and then run by the resumed segment, under ResumeRun's span.
    executed = [span for span in collector.named("tool send_email") if root_of(span) == resume[0]]
    assert len(executed) == 1
    assert collector.named("agent assistant")
    every_attribute = repr([span.attributes for span in collector.spans])
    assert "7741" not in every_attribute
    assert "bob@example.com" not in every_attribute
