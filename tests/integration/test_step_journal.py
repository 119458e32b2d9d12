"""The service's step journal (`JournaledSteps` on `step_journal`) against real PostgreSQL:
completed calls replay instead of running again, a replay that asks for another call stops,
and a cancelled run's calls stop or never start. Results are recorded as JSON: any tool result
replays as the model saw it, and an entry this build cannot read fails clearly."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest
from agents import FunctionTool, function_tool
from openai.types.responses import Response
from timestep.domain import NewRun, RunError
from timestep.durability.steps import JournaledSteps, NondeterministicReplayError, not_idempotent
from timestep.runtime.steps import SegmentSupersededError
from timestep.store.runs import RunStore

WAIT = 10.0  # an upper bound so a bug fails the test instead of hanging it; never a sleep


async def running_run(store: RunStore) -> str:
    """A run RUNNING its first segment."""
    run, _, _ = await store.create_run(NewRun(agent=f"agent_{uuid.uuid4().hex[:12]}", input="Hello"))
    begun, _ = await store.begin_segment(run.id, 1)
    assert begun is not None
    return run.id


async def journal(store: RunStore, run_id: str) -> JournaledSteps:
    """The steps of segment 1 as an execution (first or recovered) of it sees them."""
    steps = JournaledSteps(store, run_id, 1, "test-executor")
    await steps.load()
    return steps


def tool_named(name: str) -> FunctionTool:
    @function_tool(name_override=name)
    def tool() -> str:
        """A tool the test only names."""
        return "unused"

    return tool


def reply(text: str) -> Response:
    """A completed model response saying `text`."""
    return Response.model_validate(
        {
            "id": f"resp_{uuid.uuid4().hex[:8]}",
            "created_at": 1_700_000_000,
            "model": "gpt-4.1",
            "object": "response",
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ],
            "usage": {
                "input_tokens": 10,
                "output_tokens": 2,
                "total_tokens": 12,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }
    )


def said(response: Response) -> str:
    return response.output_text


class Calls:
    """Counts the calls that really ran."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def returning(self, value: Any) -> Any:
        async def call() -> Any:
            self.made.append(said(value) if isinstance(value, Response) else repr(value))
            return value

        return call


async def test_a_recovered_segment_replays_recorded_calls_in_order_without_making_them(
    store: RunStore,
) -> None:
    run_id = await running_run(store)
    calls = Calls()
    first = await journal(store, run_id)
    answer = reply("answer 1")
    assert await first.model_call("gpt-4.1", calls.returning(answer)) is answer
    assert await first.tool_call(tool_named("lookup"), "call_1", calls.returning(["row"])) == ["row"]

    recovered = await journal(store, run_id)
    assert said(await recovered.model_call("gpt-4.1", calls.returning(reply("answer 2")))) == "answer 1"
    assert await recovered.tool_call(tool_named("lookup"), "call_1", calls.returning(["other"])) == ["row"]
    # The first call past what was recorded runs.
    assert said(await recovered.model_call("gpt-4.1", calls.returning(reply("new")))) == "new"

    assert calls.made == ["answer 1", "['row']", "new"]


async def test_a_replay_that_asks_for_another_call_than_the_recorded_one_stops(store: RunStore) -> None:
    run_id = await running_run(store)
    calls = Calls()
    await (await journal(store, run_id)).model_call("gpt-4.1", calls.returning(reply("recorded")))

    recovered = await journal(store, run_id)
    expected = re.escape("recorded 'model:gpt-4.1' as call 1")
    with pytest.raises(NondeterministicReplayError, match=expected) as stopped:
        await recovered.tool_call(tool_named("send_email"), "call_1", calls.returning("sent"))
    assert stopped.value.code == "nondeterministic_replay"
    assert calls.made == ["recorded"]


async def test_a_failed_attempt_leaves_no_trace_so_its_retry_replays_in_the_same_place(
    store: RunStore,
) -> None:
    run_id = await running_run(store)
    calls = Calls()

    async def unreachable() -> Response:
        raise ConnectionError("the model server is down")

    first = await journal(store, run_id)
    with pytest.raises(ConnectionError):
        await first.model_call("gpt-4.1", unreachable)
    assert said(await first.model_call("gpt-4.1", calls.returning(reply("retried")))) == "retried"
    assert await first.tool_call(tool_named("lookup"), "call_1", calls.returning("row")) == "row"

    recovered = await journal(store, run_id)
    assert said(await recovered.model_call("gpt-4.1", calls.returning(reply("again")))) == "retried"
    assert await recovered.tool_call(tool_named("lookup"), "call_1", calls.returning("other")) == "row"
    assert calls.made == ["retried", "'row'"]


async def test_two_executions_of_one_call_keep_the_result_recorded_first(store: RunStore) -> None:
    run_id = await running_run(store)
    one, other = await journal(store, run_id), await journal(store, run_id)
    assert said(await one.model_call("gpt-4.1", Calls().returning(reply("first")))) == "first"
    assert said(await other.model_call("gpt-4.1", Calls().returning(reply("second")))) == "first"


async def test_a_call_in_flight_stops_when_its_run_is_cancelled_elsewhere(store: RunStore) -> None:
    run_id = await running_run(store)
    steps = await journal(store, run_id)
    started, stopped = asyncio.Event(), asyncio.Event()

    async def slow_model() -> str:
        started.set()
        try:
            await asyncio.Event().wait()  # a model that never answers
        finally:
            stopped.set()
        return "never"

    call = asyncio.create_task(steps.model_call("gpt-4.1", slow_model))
    await asyncio.wait_for(started.wait(), WAIT)
    await store.cancel_run(run_id, RunError("cancelled", "Cancelled by the test."))

    with pytest.raises(SegmentSupersededError, match="no longer running segment 1"):
        await asyncio.wait_for(call, WAIT)
    assert stopped.is_set()
    assert await store.recorded_steps(run_id, 1) == {}


async def test_a_tool_call_does_not_start_for_a_cancelled_run(store: RunStore) -> None:
    run_id = await running_run(store)
    steps = await journal(store, run_id)
    await store.cancel_run(run_id, RunError("cancelled", "Cancelled by the test."))
    calls = Calls()

    with pytest.raises(SegmentSupersededError):
        await steps.tool_call(not_idempotent(tool_named("charge_card")), "call_1", calls.returning("charged"))
    assert calls.made == []
    assert await store.recorded_steps(run_id, 1) == {}
