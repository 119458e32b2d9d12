"""A waiting caller's gRPC deadline propagates into the run segment it starts: when it passes, the
model call in flight is abandoned (the fake model server sees the client go away) and the run
ends FAILED with `deadline_exceeded`. A caller that does not wait sets no deadline on the run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from timestep.app import TimestepService
from timestep.runtime.providers import ModelConfig
from timestep_client import RunStatus, TimestepClient

from tests.conftest import TEST_API_KEY, StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, Usage, gate, response, text, tool_call
from timestep_testing.helpers import EMAIL_ARGS, WAIT, collect_events, expect_rpc_error, of_kind, pending

DEADLINE_S = 1.0


@pytest.fixture
async def abandoning_openai() -> AsyncIterator[FakeOpenAI]:
    """A fake model that records requests whose client went away before the answer."""
    async with FakeOpenAI(cancel_on_disconnect=True) as fake:
        yield fake


@pytest.fixture
async def service(
    start_service: StartService, abandoning_openai: FakeOpenAI
) -> AsyncIterator[TimestepService]:
    config = ModelConfig(openai_api_key=TEST_API_KEY, openai_base_url=abandoning_openai.base_url)
    async with start_service(config) as running:
        yield running


@pytest.fixture
async def client(service: TimestepService) -> AsyncIterator[TimestepClient]:
    async with TimestepClient(f"127.0.0.1:{service.port}") as connected:
        yield connected


async def test_a_create_runs_deadline_stops_the_model_call_and_fails_the_run(
    client: TimestepClient, abandoning_openai: FakeOpenAI
) -> None:
    never = asyncio.Event()
    abandoning_openai.script(gate(text("Too late."), never))

    await expect_rpc_error(
        client.create_run("assistant", "Write an essay.", wait=True, timeout=DEADLINE_S),
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
    await abandoning_openai.wait_for_abandoned(1, WAIT)  # the model call was dropped
    run = (await client.list_runs()).runs[0]
    events = await collect_events(client, run.id)
    run = await client.get_run(run.id)

    assert run.status == RunStatus.RUN_STATUS_FAILED
    assert run.error.code == "deadline_exceeded"
    assert "deadline" in run.error.message
    assert "StreamRunEvents" in run.error.message
    assert events[-1].status_changed.status == RunStatus.RUN_STATUS_FAILED


async def test_a_resume_runs_deadline_applies_to_the_segment_it_starts(
    client: TimestepClient, abandoning_openai: FakeOpenAI
) -> None:
    abandoning_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_deadline"))
    run = await client.create_run("assistant", "Tell Bob I'm late", wait=True, timeout=WAIT)
    await client.approve(run.id, pending(run)[0].id)
    abandoning_openai.script(gate(text("Bob knows."), asyncio.Event()))

    await expect_rpc_error(
        client.resume(run.id, wait=True, timeout=DEADLINE_S), grpc.StatusCode.DEADLINE_EXCEEDED
    )
    await abandoning_openai.wait_for_abandoned(1, WAIT)
    await collect_events(client, run.id, run.last_sequence)

    assert (await client.get_run(run.id)).error.code == "deadline_exceeded"


async def test_a_caller_that_does_not_wait_leaves_the_run_without_a_deadline(
    client: TimestepClient, abandoning_openai: FakeOpenAI, database_url: str
) -> None:
    released = asyncio.Event()
    abandoning_openai.script(gate(text("Done."), released))
    waited = await client.create_run("assistant", "Quick one.", wait=False, timeout=DEADLINE_S)
    await abandoning_openai.wait_for_requests(1, WAIT)
    released.set()
    await collect_events(client, waited.id)

    connection = await asyncpg.connect(database_url)
    try:
        deadline = await connection.fetchval("SELECT segment_deadline FROM runs WHERE id = $1", waited.id)
    finally:
        await connection.close()
    assert deadline is None
    assert (await client.get_run(waited.id)).status == RunStatus.RUN_STATUS_COMPLETED


async def test_a_run_stopped_by_its_deadline_counts_the_model_calls_it_made(
    client: TimestepClient, abandoning_openai: FakeOpenAI
) -> None:
    abandoning_openai.script(
        response(tool_call("get_weather", {"city": "Rome"}), usage=Usage(input_tokens=700, output_tokens=30)),
        gate(text("Too late."), asyncio.Event()),
    )

    await expect_rpc_error(
        client.create_run("assistant", "Weather in Rome?", wait=True, timeout=DEADLINE_S),
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
    await abandoning_openai.wait_for_abandoned(1, WAIT)
    run = (await client.list_runs()).runs[0]
    [reported] = of_kind(await collect_events(client, run.id), "usage")
    run = await client.get_run(run.id)

    assert run.error.code == "deadline_exceeded"
    # The first call answered before the deadline; the one it cut off never did.
    assert (run.usage.requests, run.usage.input_tokens, run.usage.output_tokens) == (1, 700, 30)
    assert reported.total == run.usage
    assert [(c.agent, c.usage.input_tokens) for c in reported.calls] == [("assistant", 700)]
