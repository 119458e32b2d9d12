"""Content is data, end to end: NUL, emoji, right-to-left marks, the store's escape character,
lone surrogates and a megabyte of CJK in model text, tool output, run input, input items,
tool arguments, rejection messages and cancel reasons come back exactly, through two replicas on
one database. Both replicas are services in this process, where they share DBOS, which executes
a segment on one of them; each run is followed on both, so one subscriber is on the replica not
executing it and gets its events and streamed deltas through the database (LISTEN/NOTIFY).

The one lossy spot: a protobuf string must be UTF-8, so a lone surrogate in a plain-text field
comes out as U+FFFD; JSON fields (`*_json`) keep it as its \\udXXX escape.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Final

import grpc
import pytest
from timestep.app import TimestepService
from timestep.runtime.providers import ModelConfig
from timestep_client import InterruptionStatus, RunEvent, RunStatus, TimestepClient

from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.helpers import (
    EventStream,
    collect_events,
    conversation,
    function_call_outputs,
    is_kind,
    of_kind,
    pending,
    sequences,
)

HOSTILE: Final = (
    "NUL\x00 then a\x00b, emoji 🧪👩\u200d👩\u200d👧, RTL \u200f\u05e9\u05dc\u05d5\u05dd\u200f, "
    '"quotes" \\ back\\slash, escape-like \uffff \uffff0 \uffffud800 \\u0000, control \x01\x1f.'
)
LONE_SURROGATES: Final = "high \ud800 low \udfff end"
# About 1 MB of CJK (3 MB of UTF-8).
CJK: Final = "漢字かな交じり文" * (1_000_000 // 24)
# A megabyte of CJK is 3 MB of UTF-8, and the message_output event carries it twice (its text and
# its item JSON): more than gRPC's default 4 MiB a message.
BIG_MESSAGES: Final = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
SLOW: Final = 60.0  # an upper bound for a megabyte crossing two replicas on a busy machine


def plain(text: str) -> str:
    """`text` as a protobuf string field carries it."""
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


@pytest.fixture
async def here(service: TimestepService) -> AsyncIterator[TimestepClient]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}", options=BIG_MESSAGES)
    async with TimestepClient(channel=channel) as client:
        yield client


@pytest.fixture
async def there(start_service: StartService, model_config: ModelConfig) -> AsyncIterator[TimestepClient]:
    async with start_service(model_config) as other:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{other.port}", options=BIG_MESSAGES)
        async with TimestepClient(channel=channel) as client:
            yield client


async def follow_on_both(
    here: TimestepClient, there: TimestepClient, released: asyncio.Event, run_id: str, wait_s: float = SLOW
) -> list[list[RunEvent]]:
    """Every event of the run as a subscriber on each replica gets it, both subscribed before the
    model (held by `released`) answers."""
    async with EventStream(here, run_id) as first, EventStream(there, run_id) as second:
        for stream in (first, second):
            await stream.wait_for(lambda event: event.sequence == 1)
        released.set()
        await asyncio.gather(first.rest(wait_s), second.rest(wait_s))
    return [first.received, second.received]


def deltas(events: list[RunEvent]) -> str:
    return "".join(event.text_delta.delta for event in of_kind_events(events, "text_delta"))


def of_kind_events(events: list[RunEvent], kind: str) -> list[RunEvent]:
    return [event for event in events if is_kind(kind)(event)]


def strings(value: Any) -> set[str]:
    """Every string in a JSON value."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {*value, *(s for item in value.values() for s in strings(item))}
    if isinstance(value, list):
        return {s for item in value for s in strings(item)}
    return set()


def as_json_means(text: str) -> str:
    """`text` after a trip through JSON, as the service gets what a model sends: its JSON
    escapes of the halves of a surrogate pair mean one character."""
    decoded: str = json.loads(json.dumps(text))
    return decoded


async def assert_answered(
    here: TimestepClient, there: TimestepClient, fake_openai: FakeOpenAI, answer: str, wait_s: float = 10.0
) -> None:
    """Run `answer` as the model's streamed reply and check every copy of it the other replica
    gives back."""
    released = asyncio.Event()
    fake_openai.script(text(answer, chunks=40, hold=released))
    run = await here.create_run("assistant", "Say it")

    followed = await follow_on_both(here, there, released, run.id, wait_s)

    sent = as_json_means(answer)
    finished = await there.get_run(run.id)
    assert finished.status == RunStatus.RUN_STATUS_COMPLETED, finished.error
    assert finished.final_output == plain(sent)
    for events in followed:
        assert deltas(events) == plain(sent), "the streamed deltas, concatenated"
        [message] = of_kind(events, "message_output")
        assert message.text == plain(sent)
        [item_text] = [part["text"] for part in json.loads(message.item_json)["content"]]
        assert item_text == sent, "JSON fields carry even lone surrogates exactly"
        assert [final.output for final in of_kind(events, "final_output")] == [plain(sent)]
        assert sequences(events) == list(range(1, finished.last_sequence + 1))


async def test_model_text_with_nul_emoji_and_rtl_reaches_the_other_replica_exactly(
    here: TimestepClient, there: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    await assert_answered(here, there, fake_openai, " ".join([HOSTILE] * 50))


async def test_lone_surrogates_in_model_text_become_the_replacement_character_in_text_fields(
    here: TimestepClient, there: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    await assert_answered(here, there, fake_openai, LONE_SURROGATES)


async def test_a_megabyte_of_cjk_streams_to_the_other_replica_exactly(
    here: TimestepClient, there: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    await assert_answered(here, there, fake_openai, CJK, wait_s=SLOW)


async def test_a_tools_hostile_output_reaches_the_model_and_the_other_replica_exactly(
    here: TimestepClient, there: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    released = asyncio.Event()
    # Not lone surrogates: the Agents SDK cannot fingerprint tool arguments holding one.
    city = HOSTILE
    fake_openai.script(
        tool_call("get_weather", {"city": city}, call_id="call_w", hold=released), text("Done.")
    )
    run = await here.create_run("assistant", "Weather?")

    followed = await follow_on_both(here, there, released, run.id)

    output = f"The weather in {city} is sunny, 21°C."
    assert function_call_outputs(fake_openai.requests[1]) == {"call_w": output}, "what the model was told"
    for events in followed:
        [called] = of_kind(events, "tool_called")
        assert called.arguments_json == json.dumps({"city": city}), "as the model sent them"
        [tool_output] = of_kind(events, "tool_output")
        assert (tool_output.output, json.loads(tool_output.item_json)["output"]) == (output, output)


async def test_hostile_input_arguments_rejection_message_and_state_come_back_exactly(
    here: TimestepClient, there: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    arguments = {"to": "bob@example.com", "subject": HOSTILE, "body": CJK[:5000]}
    sent_arguments = json.dumps(arguments)  # as the fake sends them: \u-escaped JSON text
    fake_openai.script(tool_call("send_email", arguments, call_id="call_mail"))
    run = await here.create_run("assistant", input_items=[{"role": "user", "content": HOSTILE}], wait=True)
    assert conversation(fake_openai.requests[0]) == [("user", HOSTILE)], "the model got the input exactly"

    paused = await there.get_run(run.id)
    [interruption] = pending(paused)
    assert interruption.arguments_json == sent_arguments
    state = json.loads((await there.get_state(run.id)).state_json)
    assert {HOSTILE, sent_arguments} <= strings(state), "the RunState holds input and arguments exactly"

    rejected = await there.reject(run.id, interruption.id, HOSTILE)
    assert rejected.message == HOSTILE
    assert rejected.status == InterruptionStatus.INTERRUPTION_STATUS_REJECTED
    fake_openai.script(text("Not sent."))
    resumed = await here.resume(run.id, wait=True)

    assert resumed.status == RunStatus.RUN_STATUS_COMPLETED, resumed.error
    assert function_call_outputs(fake_openai.requests[-1]) == {"call_mail": HOSTILE}, "the model was told"
    events = await collect_events(there, run.id)
    assert [d.message for d in of_kind(events, "interruption_decided")] == [HOSTILE]
    assert [i.message for i in (await there.get_run(run.id)).interruptions] == [HOSTILE]


async def test_plain_input_and_a_cancel_reason_come_back_exactly(
    here: TimestepClient, there: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    released = asyncio.Event()
    fake_openai.script(text("never", hold=released))
    # Session ids are ids (a strict charset), not content.
    run = await here.create_run("assistant", HOSTILE, metadata={HOSTILE: HOSTILE}, session_id="hostile-1")
    await fake_openai.wait_for_requests(1, timeout=10.0)
    assert conversation(fake_openai.requests[0])[-1] == ("user", HOSTILE)

    cancelled = await there.cancel(run.id, HOSTILE)
    released.set()

    assert cancelled.status == RunStatus.RUN_STATUS_CANCELLED
    assert (cancelled.error.message, cancelled.session_id, dict(cancelled.metadata)) == (
        HOSTILE,
        "hostile-1",
        {HOSTILE: HOSTILE},
    )
    events = await collect_events(here, run.id)
    assert [s.reason for s in of_kind(events, "status_changed")][-1] == HOSTILE
    listed = await there.list_runs(session_id="hostile-1")
    assert [r.id for r in listed.runs] == [run.id]
