"""Usage and cost: every model call's tokens (input, output, cached, reasoning) and estimated
cost, per call in the usage event, summed on the run, and summarized by agent and model over a
time range with UsageService.GetUsage — also the calls of a segment that then fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from timestep.runtime.providers import ModelConfig
from timestep_client import RunStatus, TimestepClient

from tests.conftest import StartService
from timestep_testing.fakes.ollama import FakeOllama
from timestep_testing.fakes.openai_responses import FakeOpenAI, Turn, Usage, error, response, text, tool_call
from timestep_testing.helpers import EMAIL_ARGS, collect_events, expect_rpc_error, of_kind, pending

# gpt-4.1 list prices, US dollars per million tokens: input 2.00, cached input 0.50, output 8.00.
FIRST = Usage(input_tokens=1000, output_tokens=200, cached_tokens=400, reasoning_tokens=50)
SECOND = Usage(input_tokens=2000, output_tokens=100, cached_tokens=1000)
FIRST_COST = (600 * 2.00 + 400 * 0.50 + 200 * 8.00) / 1e6
SECOND_COST = (1000 * 2.00 + 1000 * 0.50 + 100 * 8.00) / 1e6


async def test_a_run_reports_each_model_calls_usage_and_cost_and_their_sum(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(
        response(tool_call("get_weather", {"city": "Rome"}), usage=FIRST),
        response(text("Warm in Rome."), usage=SECOND),
    )

    run = await client.create_run("assistant", "Weather in Rome?", wait=True)

    usage = run.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens, usage.total_tokens) == (
        2,
        3000,
        300,
        3300,
    )
    assert (usage.cached_tokens, usage.reasoning_tokens) == (1400, 50)
    assert usage.cost_usd == pytest.approx(FIRST_COST + SECOND_COST)
    [reported] = of_kind(await collect_events(client, run.id), "usage")
    assert reported.total == usage
    assert [(c.agent, c.model, c.priced) for c in reported.calls] == [("assistant", "gpt-4.1", True)] * 2
    assert [c.usage.cost_usd for c in reported.calls] == [
        pytest.approx(FIRST_COST),
        pytest.approx(SECOND_COST),
    ]
    assert [c.usage.cached_tokens for c in reported.calls] == [400, 1000]
    assert reported.calls[0].time.ToDatetime() <= reported.calls[1].time.ToDatetime()


async def test_usage_adds_up_across_segments_and_a_model_without_a_price_costs_nothing(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(response(tool_call("send_email", EMAIL_ARGS), usage=FIRST))
    run = await client.create_run("assistant", "Email Bob", model="gpt-unknown-9", wait=True)
    await client.approve(run.id, pending(run)[0].id)
    fake_openai.script(response(text("Sent."), usage=SECOND))

    run = await client.resume(run.id, wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    assert (run.usage.requests, run.usage.input_tokens, run.usage.cost_usd) == (2, 3000, 0.0)
    first, second = of_kind(await collect_events(client, run.id), "usage")
    assert [c.priced for c in [*first.calls, *second.calls]] == [False, False]
    assert (first.segment.requests, second.segment.requests, second.total.requests) == (1, 1, 2)


async def test_get_usage_sums_calls_by_agent_and_model_over_a_time_range(
    client: TimestepClient, fake_openai: FakeOpenAI, fake_ollama: FakeOllama
) -> None:
    start = datetime.now(UTC)
    fake_openai.script(
        response(tool_call("get_weather", {"city": "Rome"}), usage=FIRST),
        response(text("Warm."), usage=SECOND),
        response(text("Again."), usage=SECOND),
    )
    fake_ollama.script(text("Local and free."))
    await client.create_run("assistant", "Weather in Rome?", wait=True)
    await client.create_run("assistant", "Again", wait=True)
    await client.create_run("assistant", "Locally", model="ollama/llama3.2", wait=True)

    summary = await client.get_usage(start_time=start)

    by_model = {(g.agent, g.model): g for g in summary.groups}
    assert list(by_model) == [("assistant", "gpt-4.1"), ("assistant", "ollama/llama3.2")]
    openai = by_model[("assistant", "gpt-4.1")]
    assert (openai.run_count, openai.usage.requests, openai.usage.input_tokens) == (2, 3, 5000)
    assert openai.usage.cost_usd == pytest.approx(FIRST_COST + 2 * SECOND_COST)
    local = by_model[("assistant", "ollama/llama3.2")]
    assert (local.run_count, local.usage.requests, local.usage.cost_usd) == (1, 1, 0.0)
    assert (summary.run_count, summary.total.requests) == (3, 4)
    assert summary.total.cost_usd == pytest.approx(openai.usage.cost_usd)

    only_local = await client.get_usage(start_time=start, model="ollama/llama3.2")
    assert [(g.model, g.usage.requests) for g in only_local.groups] == [("ollama/llama3.2", 1)]
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    before = await client.get_usage(start_time=long_ago, end_time=long_ago + timedelta(days=1))
    assert (before.total.requests, list(before.groups)) == (0, [])
    nobody = await client.get_usage(start_time=start, agent="billing")
    assert nobody.run_count == 0


async def test_get_usage_refuses_a_range_that_ends_before_it_starts(client: TimestepClient) -> None:
    now = datetime.now(UTC)

    failure = await expect_rpc_error(
        client.get_usage(start_time=now, end_time=now - timedelta(seconds=1)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )

    assert "end_time must be after start_time" in (failure.details() or "")


@pytest.mark.parametrize(
    ("second", "code"),
    [
        (error(400, "The request is malformed."), "model_error"),
        # The response arrives, and the run fails on it: the SDK rejects a call to an unknown tool.
        (response(tool_call("no_such_tool", {}), usage=SECOND), "model_behavior"),
    ],
    ids=["model-error", "rejected-response"],
)
async def test_a_failing_segment_counts_the_model_calls_it_made(
    client: TimestepClient, fake_openai: FakeOpenAI, second: Turn, code: str
) -> None:
    start = datetime.now(UTC)
    fake_openai.script(response(tool_call("get_weather", {"city": "Rome"}), usage=FIRST), second)

    run = await client.create_run("assistant", "Weather in Rome?", wait=True)

    assert run.status == RunStatus.RUN_STATUS_FAILED, run
    assert run.error.code == code
    answered = [FIRST] if code == "model_error" else [FIRST, SECOND]
    expected_input = sum(usage.input_tokens for usage in answered)
    assert (run.usage.requests, run.usage.input_tokens) == (len(answered), expected_input)
    assert run.usage.cost_usd == pytest.approx(FIRST_COST + (SECOND_COST if len(answered) == 2 else 0))
    [reported] = of_kind(await collect_events(client, run.id), "usage")
    assert reported.total == run.usage
    assert [c.usage.input_tokens for c in reported.calls] == [usage.input_tokens for usage in answered]
    summary = await client.get_usage(start_time=start)
    assert (summary.run_count, summary.total.requests) == (1, len(answered))
    assert summary.total.cost_usd == pytest.approx(run.usage.cost_usd)


async def test_a_run_out_of_turns_counts_the_model_calls_it_made(
    start_service: StartService, model_config: ModelConfig, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(response(tool_call("get_weather", {"city": "Rome"}), usage=FIRST))

    async with (
        start_service(model_config, max_turns=1) as service,
        TimestepClient(f"127.0.0.1:{service.port}") as client,
    ):
        run = await client.create_run("assistant", "Weather in Rome?", wait=True)
        [reported] = of_kind(await collect_events(client, run.id), "usage")

    assert run.error.code == "max_turns_exceeded"
    assert (run.usage.requests, run.usage.input_tokens, run.usage.output_tokens) == (1, 1000, 200)
    assert run.usage.cost_usd == pytest.approx(FIRST_COST)
    assert reported.total == run.usage
