"""The service's step journal (`JournaledSteps` on `step_journal`) against real PostgreSQL:
completed calls replay instead of running again, a replay that asks for another call stops,
and a cancelled run's calls stop or never start. Results are recorded as JSON: any tool result
replays as the model saw it, and an entry this build cannot read fails clearly."""

from __future__ import annotations

import asyncio
import pickle
import re
import threading
import uuid
from enum import StrEnum
from typing import Any

import asyncpg
import pytest
from agents import (
    FunctionTool,
    ItemHelpers,
    ModelResponse,
    ToolOutputFileContent,
    ToolOutputImage,
    ToolOutputText,
    Usage,
    UserError,
    function_tool,
)
from openai.types.responses import Response, ResponseFunctionToolCall
from pydantic import BaseModel
from timestep.domain import NewRun, RunError
from timestep.durability.journal import JournalIncompatibleError
from timestep.durability.journal_store import JournalStore, RecordedStep
from timestep.durability.steps import JournaledSteps, NondeterministicReplayError, not_idempotent
from timestep.runs.apply import RunTransitions
from timestep.runtime.failures import describe_failure
from timestep.runtime.sdk_internals import output_type_adapter
from timestep.runtime.steps import SegmentSupersededError
from timestep.scope import Scope
from timestep.store.runs import RunStore

WAIT = 10.0  # an upper bound so a bug fails the test instead of hanging it; never a sleep


async def running_run(store: RunStore) -> str:
    """A run RUNNING its first segment."""
    run, _, _ = await store.create_run(NewRun(agent=f"agent_{uuid.uuid4().hex[:12]}", input="Hello"))
    begun, _ = await RunTransitions(store).begin_segment(run.id, 1)
    assert begun is not None
    return run.id


async def journal(store: JournalStore, run_id: str) -> JournaledSteps:
    """The steps of segment 1 as an execution (first or recovered) of it sees them."""
    steps = JournaledSteps(store, run_id, 1, "test-executor")
    await steps.prepare()
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
    journal_store: JournalStore,
) -> None:
    run_id = await running_run(store)
    calls = Calls()
    first = await journal(journal_store, run_id)
    answer = reply("answer 1")
    assert await first.model_call("gpt-4.1", calls.returning(answer)) is answer
    assert await first.tool_call(tool_named("lookup"), "call_1", calls.returning(["row"])) == ["row"]

    recovered = await journal(journal_store, run_id)
    assert said(await recovered.model_call("gpt-4.1", calls.returning(reply("answer 2")))) == "answer 1"
    assert await recovered.tool_call(tool_named("lookup"), "call_1", calls.returning(["other"])) == ["row"]
    # The first call past what was recorded runs.
    assert said(await recovered.model_call("gpt-4.1", calls.returning(reply("new")))) == "new"

    assert calls.made == ["answer 1", "['row']", "new"]


async def test_a_replay_that_asks_for_another_call_than_the_recorded_one_stops(
    store: RunStore, journal_store: JournalStore
) -> None:
    run_id = await running_run(store)
    calls = Calls()
    await (await journal(journal_store, run_id)).model_call("gpt-4.1", calls.returning(reply("recorded")))

    recovered = await journal(journal_store, run_id)
    expected = re.escape("recorded 'model:gpt-4.1' as call 1")
    with pytest.raises(NondeterministicReplayError, match=expected) as stopped:
        await recovered.tool_call(tool_named("send_email"), "call_1", calls.returning("sent"))
    assert stopped.value.code == "nondeterministic_replay"
    assert calls.made == ["recorded"]


async def test_a_failed_attempt_leaves_no_trace_so_its_retry_replays_in_the_same_place(
    store: RunStore,
    journal_store: JournalStore,
) -> None:
    run_id = await running_run(store)
    calls = Calls()

    async def unreachable() -> Response:
        raise ConnectionError("the model server is down")

    first = await journal(journal_store, run_id)
    with pytest.raises(ConnectionError):
        await first.model_call("gpt-4.1", unreachable)
    assert said(await first.model_call("gpt-4.1", calls.returning(reply("retried")))) == "retried"
    assert await first.tool_call(tool_named("lookup"), "call_1", calls.returning("row")) == "row"

    recovered = await journal(journal_store, run_id)
    assert said(await recovered.model_call("gpt-4.1", calls.returning(reply("again")))) == "retried"
    assert await recovered.tool_call(tool_named("lookup"), "call_1", calls.returning("other")) == "row"
    assert calls.made == ["retried", "'row'"]


async def test_two_executions_of_one_call_keep_the_result_recorded_first(
    store: RunStore, journal_store: JournalStore
) -> None:
    run_id = await running_run(store)
    one, other = await journal(journal_store, run_id), await journal(journal_store, run_id)
    assert said(await one.model_call("gpt-4.1", Calls().returning(reply("first")))) == "first"
    assert said(await other.model_call("gpt-4.1", Calls().returning(reply("second")))) == "first"


async def test_a_call_in_flight_stops_when_its_run_is_cancelled_elsewhere(
    store: RunStore, journal_store: JournalStore
) -> None:
    run_id = await running_run(store)
    steps = await journal(journal_store, run_id)
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
    await RunTransitions(store).cancel_run(Scope.ALL, run_id, RunError("cancelled", "Cancelled by the test."))

    with pytest.raises(SegmentSupersededError, match="no longer running segment 1"):
        await asyncio.wait_for(call, WAIT)
    assert stopped.is_set()
    assert await journal_store.recorded_steps(run_id, 1) == {}


async def test_a_tool_call_does_not_start_for_a_cancelled_run(
    store: RunStore, journal_store: JournalStore
) -> None:
    run_id = await running_run(store)
    steps = await journal(journal_store, run_id)
    await RunTransitions(store).cancel_run(Scope.ALL, run_id, RunError("cancelled", "Cancelled by the test."))
    calls = Calls()

    with pytest.raises(SegmentSupersededError):
        await steps.tool_call(not_idempotent(tool_named("charge_card")), "call_1", calls.returning("charged"))
    assert calls.made == []
    assert await journal_store.recorded_steps(run_id, 1) == {}


# ----- the format: JSON that replays as the SDK needs it ------------------------------------------


class Report:
    """A tool result that cannot be pickled (it holds a lock and a generator)."""

    def __init__(self, rows: int) -> None:
        self.lock = threading.Lock()
        self.rows = (n for n in range(rows))
        self.count = rows

    def __str__(self) -> str:
        return f"Report of {self.count} rows"


class Color(StrEnum):
    RED = "red"


class Person(BaseModel):
    name: str
    age: int


def sent_to_model(tool: FunctionTool, value: Any) -> Any:
    """What the SDK sends the model for `tool` returning `value` (a function_call_output's output)."""
    call = ResponseFunctionToolCall(type="function_call", call_id="call_1", name=tool.name, arguments="{}")
    item = ItemHelpers.tool_call_output_item(
        call, value, output_json_schema=tool.output_json_schema, output_type_adapter=output_type_adapter(tool)
    )
    return item["output"]


async def record_and_replay(
    store: RunStore, journal_store: JournalStore, tool: FunctionTool, value: Any
) -> tuple[Any, Any]:
    """What the first execution and a recovered one get from a tool call that returned `value`."""
    run_id = await running_run(store)
    first = await (await journal(journal_store, run_id)).tool_call(tool, "call_1", Calls().returning(value))
    calls = Calls()
    replayed = await (await journal(journal_store, run_id)).tool_call(
        tool, "call_1", calls.returning("again")
    )
    assert calls.made == []
    return first, replayed


async def test_a_tool_result_that_cannot_be_pickled_is_recorded_and_replays_as_the_model_saw_it(
    store: RunStore, journal_store: JournalStore
) -> None:
    report = Report(3)
    with pytest.raises(TypeError):
        pickle.dumps(report)  # what the journal used to store
    tool = tool_named("report")

    first, replayed = await record_and_replay(store, journal_store, tool, report)

    assert first is report  # the first execution gets the tool's own value
    assert replayed == "Report of 3 rows"
    assert sent_to_model(tool, replayed) == sent_to_model(tool, report)


@function_tool(output_type=Person)
def find_person(name: str) -> Person:
    """Find a person."""
    return Person(name=name, age=0)


@pytest.mark.parametrize(
    ("tool", "value"),
    [
        (tool_named("plain"), "a string, as it is"),
        (tool_named("plain"), {"rows": [1, 2.5, None, True, "x"], "nested": {"ok": False}}),
        (tool_named("plain"), ToolOutputText(text="structured text")),
        (
            tool_named("plain"),
            [ToolOutputImage(image_url="https://example.com/a.png", detail="low"), ToolOutputText(text="a")],
        ),
        (tool_named("plain"), ToolOutputFileContent(file_data="aGVsbG8=", filename="hello.txt")),
        (find_person, Person(name="Ada", age=36)),
    ],
    ids=["string", "json", "text-output", "output-list", "file-output", "declared-output-type"],
)
async def test_structured_tool_results_replay_as_equal_values(
    store: RunStore, journal_store: JournalStore, tool: FunctionTool, value: Any
) -> None:
    _, replayed = await record_and_replay(store, journal_store, tool, value)

    assert replayed == value
    assert type(replayed) is type(value)
    assert sent_to_model(tool, replayed) == sent_to_model(tool, value)


@pytest.mark.parametrize(
    "value",
    [(1, 2), Person(name="Ada", age=36), {1: "a non-string key"}, float("nan"), Color.RED],
    ids=["tuple", "undeclared-model", "int-key", "nan", "str-enum"],
)
async def test_other_tool_results_replay_as_the_text_the_model_saw(
    store: RunStore, journal_store: JournalStore, value: Any
) -> None:
    tool = tool_named("plain")

    _, replayed = await record_and_replay(store, journal_store, tool, value)

    assert replayed == str(value)
    assert sent_to_model(tool, replayed) == sent_to_model(tool, value)


def rich_response() -> Response:
    """A response with what a model call may complete with: a reasoning item, text with an
    annotation, a function call, detailed usage and a request id."""
    response = Response.model_validate(
        {
            "id": "resp_rich",
            "created_at": 1_700_000_000,
            "model": "gpt-4.1",
            "object": "response",
            "parallel_tool_calls": False,
            "tool_choice": {"type": "function", "name": "lookup"},
            "tools": [],
            "status": "completed",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Think."}]},
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {
                            "type": "output_text",
                            "text": "See the docs.",
                            "annotations": [
                                {
                                    "type": "url_citation",
                                    "start_index": 0,
                                    "end_index": 3,
                                    "url": "https://example.com",
                                    "title": "Docs",
                                }
                            ],
                        }
                    ],
                },
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "call_1",
                    "name": "lookup",
                    "arguments": '{"q": "é"}',
                },
            ],
            "usage": {
                "input_tokens": 1000,
                "output_tokens": 200,
                "total_tokens": 1200,
                "input_tokens_details": {"cached_tokens": 400, "cache_write_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 50},
            },
        }
    )
    response._request_id = "req_123"
    return response


async def test_a_model_response_round_trips_through_the_journal(
    store: RunStore, journal_store: JournalStore
) -> None:
    original = rich_response()
    run_id = await running_run(store)
    await (await journal(journal_store, run_id)).model_call("gpt-4.1", Calls().returning(original))

    replayed = await (await journal(journal_store, run_id)).model_call(
        "gpt-4.1", Calls().returning(reply("no"))
    )

    assert isinstance(replayed, Response)
    # What the SDK reads of a completed response, and the items as it sends them back.
    assert replayed.output == original.output
    assert [type(item) for item in replayed.output] == [type(item) for item in original.output]
    assert (
        ModelResponse(replayed.output, Usage(), None).to_input_items()
        == ModelResponse(original.output, Usage(), None).to_input_items()
    )
    assert replayed.usage == original.usage
    assert (replayed.id, replayed._request_id) == ("resp_rich", "req_123")
    assert (replayed.model, replayed.created_at, replayed.tool_choice) == (
        original.model,
        original.created_at,
        original.tool_choice,
    )


async def test_a_non_streamed_model_response_round_trips_through_the_journal(
    store: RunStore, journal_store: JournalStore
) -> None:
    source = rich_response()
    assert source.usage is not None
    original = ModelResponse(
        output=source.output,
        usage=Usage(
            requests=1,
            input_tokens=1000,
            output_tokens=200,
            total_tokens=1200,
            input_tokens_details=source.usage.input_tokens_details,
            output_tokens_details=source.usage.output_tokens_details,
        ),
        response_id="resp_rich",
        request_id="req_123",
        raw_usage={"prompt_tokens": 1000},
    )
    run_id = await running_run(store)
    await (await journal(journal_store, run_id)).model_call("gpt-4.1", Calls().returning(original))

    replayed = await (await journal(journal_store, run_id)).model_call(
        "gpt-4.1", Calls().returning(reply("no"))
    )

    assert replayed == original


@pytest.mark.parametrize("version", [0, 2, None])
async def test_an_entry_of_another_format_version_fails_the_call_clearly(
    store: RunStore, version: int | None, journal_store: JournalStore
) -> None:
    run_id = await running_run(store)
    other = RecordedStep("model:gpt-4.1", {"version": version, "kind": "response", "answer": "?"})
    await journal_store.record_step(run_id, 1, "1", other)
    calls = Calls()

    with pytest.raises(JournalIncompatibleError, match=f"format version {version}, ") as refused:
        await (await journal(journal_store, run_id)).model_call("gpt-4.1", calls.returning(reply("no")))

    assert calls.made == []
    assert describe_failure(refused.value).code == "journal_incompatible"
    # Also when the SDK wraps it (it wraps an error of a tool call in a UserError).
    wrapped = UserError("tool failed")
    wrapped.__cause__ = refused.value
    assert describe_failure(wrapped) == RunError("journal_incompatible", refused.value.message)


async def test_an_entry_its_classes_no_longer_accept_fails_the_call_clearly(
    store: RunStore, journal_store: JournalStore
) -> None:
    run_id = await running_run(store)
    entry = {"version": 1, "kind": "tool_output", "value": {"type": "image"}}  # neither url nor id
    await journal_store.record_step(run_id, 1, "1", RecordedStep("tool:plain", entry))

    with pytest.raises(JournalIncompatibleError, match="does not fit the classes"):
        await (await journal(journal_store, run_id)).tool_call(
            tool_named("plain"), "call_1", Calls().returning("no")
        )


async def test_a_segment_an_older_build_recorded_as_pickles_is_replayed_as_unrecorded(
    store: RunStore, pool: asyncpg.Pool, journal_store: JournalStore
) -> None:
    run_id = await running_run(store)
    await pool.execute(
        """INSERT INTO segment_steps (run_id, segment, ordinal, name, output)
           VALUES ($1, 1, 1, 'model:gpt-4.1', $2)""",
        run_id,
        pickle.dumps(Exploding()),
    )
    calls = Calls()

    replayed = await (await journal(journal_store, run_id)).model_call(
        "gpt-4.1", calls.returning(reply("called again"))
    )

    assert said(replayed) == "called again"
    assert calls.made == ["called again"]


class Exploding:
    """A pickle that would run code when read."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (pytest.fail, ("a pickle from the database was read",))


async def test_calls_made_inside_a_replayed_call_do_not_shift_the_calls_after_it(
    store: RunStore, journal_store: JournalStore
) -> None:
    run_id = await running_run(store)
    first = await journal(journal_store, run_id)

    async def agent_as_tool() -> str:
        # The run of an agent used as a tool makes its own model calls inside the tool's call.
        inner = await first.model_call("gpt-4.1", Calls().returning(reply("inner answer")))
        return f"the inner agent said {said(inner)}"

    await first.tool_call(tool_named("ask_expert"), "call_1", agent_as_tool)
    await first.model_call("gpt-4.1", Calls().returning(reply("outer answer")))

    recovered = await journal(journal_store, run_id)
    calls = Calls()
    told = await recovered.tool_call(tool_named("ask_expert"), "call_1", calls.returning("not again"))
    after = await recovered.model_call("gpt-4.1", calls.returning(reply("not again")))

    assert told == "the inner agent said inner answer"
    assert said(after) == "outer answer"
    assert calls.made == []
    assert sorted(await journal_store.recorded_steps(run_id, 1)) == ["1", "1.1", "2"]
