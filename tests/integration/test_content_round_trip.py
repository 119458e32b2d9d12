"""Content is data: every content column of the store gives back exactly what was written,
whatever the text (NUL, lone surrogates, the store's own escape character, emoji, right-to-left
marks, a megabyte of CJK)."""

from __future__ import annotations

import json
import uuid
from typing import Any, Final

import asyncpg
import pytest
from timestep import RunStateStore, run_agent
from timestep.changes import SegmentOutcome
from timestep.domain import (
    EventKind,
    InterruptionStatus,
    NewInterruption,
    NewRun,
    RunError,
    RunFilter,
    RunStatus,
    Snapshot,
    Usage,
)
from timestep.event_types import FinalOutput, MessageOutput, pending
from timestep.runs.apply import RunTransitions
from timestep.scope import Scope
from timestep.store.content import ESCAPE
from timestep.store.runs import RunStore
from timestep.store.sessions import PostgresSession

from tests.integration.test_library_api import config, make_agent
from timestep_testing.fakes.openai_responses import FakeOpenAI, tool_call
from timestep_testing.helpers import conversation

HOSTILE: Final = {
    "nul": "\x00",
    "nul-inside": "a\x00b",
    "nuls": "\x00\x00x\x00",
    "lone-high-surrogate": "\ud800",
    "lone-low-surrogate": "x\udfff",
    "surrogate-halves": "\ud83e\uddea",  # two code points that UTF-16 would pair
    "escape-char": ESCAPE,
    "escape-lookalikes": f"{ESCAPE}0 {ESCAPE}u d800 {ESCAPE}ud800 {ESCAPE}{ESCAPE}0 {ESCAPE}x",
    "json-escape-text": "\\u0000 \\ud800",
    "emoji": "🧪👩\u200d👩\u200d👧",
    "rtl-mark": "\u200f\u05e9\u05dc\u05d5\u05dd\u200f",  # RLM and Hebrew
    "control": "\x01\x1f\x7f",
}
# Runs a test leaves QUEUED would be started by the services of later tests on this database.
CANCELLED: Final = RunError("cancelled", "test over")
# About 1 MB of UTF-8.
CJK: Final = "漢字かな交じり文" * (1_000_000 // 24)
ALL: Final = "|".join(HOSTILE.values())


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=list(HOSTILE))
def hostile(request: pytest.FixtureRequest) -> str:
    text: str = HOSTILE[request.param]
    return text


def message(value: str) -> MessageOutput:
    """A message event with `value` in every field, its item JSON with `value` in keys and values,
    nested."""
    item = {"text": value, value: [value, {"k": value}], "n": 1}
    return MessageOutput(agent="a" + value, text=value, item_json=json.dumps(item, ensure_ascii=False))


async def test_every_content_column_of_a_run_comes_back_exactly(store: RunStore, hostile: str) -> None:
    items: list[dict[str, Any]] = [{"role": "user", "content": hostile, hostile: hostile}]
    new_run = NewRun(
        agent=unique("agent"),
        input=hostile,
        session_id=unique("session") + hostile,
        model="gpt-fake" + hostile,
        request_id=unique("req") + hostile,
        metadata={"k" + hostile: "v" + hostile},
    )
    run, _, created = await store.create_run(new_run)
    assert created
    assert (run.session_id, run.model, run.request_id, run.metadata) == (
        new_run.session_id,
        new_run.model,
        new_run.request_id,
        new_run.metadata,
    )
    assert (await store.segment_start(run.id, 1))[1] == hostile
    # The same request finds the same run (the fingerprint and request id compare as stored).
    again, _, created_again = await store.create_run(new_run)
    assert (again.id, created_again) == (run.id, False)
    listed = await store.list_runs(Scope.ALL, RunFilter(session_id=new_run.session_id), 10, "")
    assert [r.id for r in listed.items] == [run.id]

    with_items, _, _ = await store.create_run(NewRun(agent=unique("agent"), input=items))
    assert (await store.segment_start(with_items.id, 1))[1] == items
    await RunTransitions(store).cancel_run(Scope.ALL, with_items.id, CANCELLED)

    await RunTransitions(store).begin_segment(run.id, 1)
    stored = await store.events.append_events(
        run.id, 1, [pending(message(hostile), dedupe_key="1:" + hostile)]
    )
    # A replay of the keyed event stores nothing again.
    assert (
        await store.events.append_events(run.id, 1, [pending(message(hostile), dedupe_key="1:" + hostile)])
        == []
    )
    snapshot = Snapshot("python", "1.0", json.dumps({"input": hostile}, ensure_ascii=False) + hostile)
    interrupted, events = await RunTransitions(store).finish_segment(
        run.id,
        1,
        SegmentOutcome(
            status=RunStatus.INTERRUPTED,
            current_agent="assistant" + hostile,
            usage=Usage(1, 10, 5, 15),
            final_output=hostile,
            snapshot=snapshot,
            interruptions=[
                NewInterruption(
                    agent="assistant" + hostile,
                    tool_name="send_email" + hostile,
                    call_id="call" + hostile,
                    arguments_json=json.dumps({"body": hostile}) + hostile,
                )
            ],
            events=[pending(FinalOutput("a", hostile))],
        ),
    )
    assert (interrupted.current_agent, interrupted.final_output) == ("assistant" + hostile, hostile)
    assert await store.latest_snapshot(run.id) == snapshot
    [waiting] = interrupted.interruptions
    assert (waiting.agent, waiting.tool_name, waiting.call_id, waiting.arguments_json) == (
        "assistant" + hostile,
        "send_email" + hostile,
        "call" + hostile,
        json.dumps({"body": hostile}) + hostile,
    )
    listed_pending = await store.list_interruptions(Scope.ALL, "", 500, "")
    assert waiting in listed_pending.items or listed_pending.next_page_token

    decided, _ = await RunTransitions(store).decide_interruption(
        Scope.ALL, run.id, waiting.id, InterruptionStatus.REJECTED, always=False, message=hostile
    )
    assert decided.message == hostile
    reread = await store.get_run(Scope.ALL, run.id)
    assert reread.interruptions == [decided]
    assert (
        reread
        == (await store.list_runs(Scope.ALL, RunFilter(session_id=new_run.session_id), 10, "")).items[0]
    )

    cancelled, _ = await RunTransitions(store).cancel_run(Scope.ALL, run.id, RunError("cancelled", hostile))
    assert cancelled.error == RunError("cancelled", hostile)

    all_events = await store.events.list_events(run.id, 0)
    assert [e.data for e in all_events if e.kind is EventKind.MESSAGE_OUTPUT] == [message(hostile)]
    assert stored[0].data == message(hostile)
    final = [e.data for e in events if e.kind is EventKind.FINAL_OUTPUT]
    assert final == [FinalOutput("a", hostile)]
    assert [e.payload["reason"] for e in all_events if e.kind is EventKind.STATUS_CHANGED][-1] == hostile
    decided_events = [e.payload for e in all_events if e.kind is EventKind.INTERRUPTION_DECIDED]
    assert [d["message"] for d in decided_events] == [hostile]


async def test_session_items_come_back_exactly(pool: asyncpg.Pool) -> None:
    session = PostgresSession(unique("session") + ALL, pool, replay_key=unique("run") + ALL)
    items: list[Any] = [{"role": "user", "content": text, text: text} for text in (*HOSTILE.values(), CJK)]

    await session.add_items(items)

    assert await session.get_items() == items
    assert await session.get_items(limit=2) == items[-2:]
    assert await session.pop_item() == items[-1]
    # A replay with the same key first removes what the earlier attempt stored.
    replayed = PostgresSession(session.session_id, pool, replay_key=session._replay_key)
    assert await replayed.get_items() == []


async def test_a_megabyte_of_cjk_comes_back_exactly(store: RunStore) -> None:
    run, _, _ = await store.create_run(NewRun(agent=unique("agent"), input=CJK))
    await RunTransitions(store).begin_segment(run.id, 1)
    await store.events.append_events(run.id, 1, [pending(MessageOutput("a", CJK, "{}"))])
    snapshot = Snapshot("python", "1.0", json.dumps({"input": CJK}, ensure_ascii=False))
    finished, _ = await RunTransitions(store).finish_segment(
        run.id,
        1,
        SegmentOutcome(
            status=RunStatus.COMPLETED, current_agent="a", usage=Usage(), final_output=CJK, snapshot=snapshot
        ),
    )

    assert finished.final_output == CJK
    assert (await store.segment_start(run.id, 1))[1] == CJK
    assert await store.latest_snapshot(run.id) == snapshot
    assert [
        e.data for e in await store.events.list_events(run.id, 0) if e.kind is EventKind.MESSAGE_OUTPUT
    ] == [MessageOutput("a", CJK, "{}")]


async def test_ordinary_text_is_stored_as_it_is(store: RunStore, pool: asyncpg.Pool) -> None:
    """The escape touches nothing but NUL, surrogates and its own character: SQL sees ordinary
    text unchanged (what other tools reading the database see)."""
    text = "plain é 漢字 🧪 \u200f"
    run, _, _ = await store.create_run(NewRun(agent=unique("agent"), input=text, metadata={"k": text}))
    await RunTransitions(store).cancel_run(Scope.ALL, run.id, CANCELLED)

    row = await pool.fetchrow(
        "SELECT input #>> '{}' AS input, metadata ->> 'k' AS k FROM runs WHERE id = $1", run.id
    )
    assert row is not None
    assert (row["input"], row["k"]) == (text, text)
    assert await pool.fetchval(
        "SELECT count(*) FROM runs WHERE id = $1 AND metadata ->> 'k' = $2", run.id, text
    )


async def test_a_saved_run_state_with_hostile_content_loads_back_exactly(
    fake_openai: FakeOpenAI, pool: asyncpg.Pool
) -> None:
    # Not lone surrogates: the OpenAI client cannot send one to the model.
    text = "|".join(value for value in HOSTILE.values() if not any("\ud800" <= c <= "\udfff" for c in value))
    agent = make_agent()
    fake_openai.script(
        tool_call("send_email", {"to": "bob@example.com", "subject": text, "body": CJK[:10_000]})
    )
    paused = await run_agent(agent, text, None, False, run_config=config(fake_openai))
    state = paused.to_state()
    states = RunStateStore(agent=agent, session_id=unique("session") + text, pool=pool)

    await states.save(state)
    loaded = await states.load()

    assert loaded is not None
    assert loaded.to_string() == state.to_string()
    assert conversation(fake_openai.requests[0]) == [("user", text)]
