"""The public library API (`run_agent`, `RunStateStore`, `PostgresSession`) against real
PostgreSQL and the fake OpenAI Responses server."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from agents import (
    Agent,
    OpenAIProvider,
    RunConfig,
    RunResult,
    RunResultStreaming,
    TResponseInputItem,
    function_tool,
)
from agents.stream_events import StreamEvent
from timestep import PostgresSession, RunStateStore, run_agent
from timestep.store.database import shared_pool

from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call

EMAIL_ARGS = {"to": "bob@example.com", "subject": "Hi", "body": "Hello Bob"}


@function_tool(needs_approval=True)
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email after a person approves it."""
    return f"Email to {to} sent."


def make_agent(name: str | None = None) -> Agent[Any]:
    return Agent(
        name=name or f"lib_agent_{uuid.uuid4().hex[:8]}",
        instructions="Be brief.",
        model="gpt-fake",
        tools=[send_email],
    )


def config(fake: FakeOpenAI) -> RunConfig:
    provider = OpenAIProvider(api_key="test", base_url=fake.base_url, use_responses=True)
    return RunConfig(model_provider=provider, tracing_disabled=True)


def session_id() -> str:
    return f"lib_session_{uuid.uuid4().hex}"


def user(content: str) -> TResponseInputItem:
    return {"role": "user", "content": content}


def texts_of(request_input: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) of every message in a request's input, whatever its content shape."""
    found = []
    for item in request_input:
        if "role" not in item:
            continue
        content = item["content"]
        if isinstance(content, str):
            found.append((item["role"], content))
        else:
            found.append((item["role"], "".join(part.get("text", "") for part in content)))
    return found


@pytest.fixture
async def shared_pool_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> AsyncIterator[None]:
    """Library objects without a pool find the database through PG_CONNECTION_URI."""
    monkeypatch.setenv("PG_CONNECTION_URI", database_url)
    yield
    await (await shared_pool()).close()


# ----- run_agent ------------------------------------------------------------------------------


async def test_run_agent_without_streaming(fake_openai: FakeOpenAI, pool: asyncpg.Pool) -> None:
    fake_openai.script(text("Hello from the fake."))
    session = PostgresSession(session_id(), pool=pool)

    result = await run_agent(make_agent(), "Say hello", session, False, run_config=config(fake_openai))

    assert isinstance(result, RunResult)
    assert result.final_output == "Hello from the fake."
    assert result.interruptions == []
    assert fake_openai.requests[0].get("stream") is not True
    assert texts_of(fake_openai.requests[0]["input"]) == [("user", "Say hello")]
    assert result.context_wrapper.usage.input_tokens == 10
    history = texts_of([dict(item) for item in await session.get_items()])
    assert history == [("user", "Say hello"), ("assistant", "Hello from the fake.")]


async def test_run_agent_streaming_passes_every_event(fake_openai: FakeOpenAI, pool: asyncpg.Pool) -> None:
    fake_openai.script(text("One two three four."))
    seen: list[StreamEvent] = []

    async def on_event(event: StreamEvent) -> None:
        seen.append(event)

    result = await run_agent(
        make_agent(),
        "Count",
        PostgresSession(session_id(), pool=pool),
        True,
        run_config=config(fake_openai),
        on_event=on_event,
    )

    assert isinstance(result, RunResultStreaming)
    assert result.is_complete
    assert result.final_output == "One two three four."
    assert fake_openai.requests[0]["stream"] is True
    deltas = [
        event.data.delta
        for event in seen
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta"
    ]
    assert len(deltas) == 4
    assert "".join(deltas) == "One two three four."
    assert any(
        event.type == "run_item_stream_event" and event.name == "message_output_created" for event in seen
    )


async def test_streaming_run_pauses_on_a_tool_that_needs_approval(
    fake_openai: FakeOpenAI, pool: asyncpg.Pool
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_stream"))

    result = await run_agent(
        make_agent(),
        "Email Bob",
        PostgresSession(session_id(), pool=pool),
        True,
        run_config=config(fake_openai),
    )

    assert [(item.tool_name, item.call_id) for item in result.interruptions] == [
        ("send_email", "call_stream")
    ]
    assert fake_openai.remaining == 0


# ----- RunStateStore ------------------------------------------------------------------------


async def test_pause_save_load_approve_resume(fake_openai: FakeOpenAI, pool: asyncpg.Pool) -> None:
    agent = make_agent()
    sid = session_id()
    session = PostgresSession(sid, pool=pool)
    states = RunStateStore(agent=agent, session_id=sid, pool=pool)
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_email"))

    paused = await run_agent(agent, "Email Bob", session, False, run_config=config(fake_openai))

    assert [(item.tool_name, item.call_id) for item in paused.interruptions] == [("send_email", "call_email")]
    await states.save(paused.to_state())

    loaded = await states.load()
    assert loaded is not None
    pending = loaded.get_interruptions()
    assert [(item.tool_name, item.call_id) for item in pending] == [("send_email", "call_email")]
    loaded.approve(pending[0])
    fake_openai.script(text("The email is sent."))

    resumed = await run_agent(agent, loaded, session, False, run_config=config(fake_openai))

    assert resumed.final_output == "The email is sent."
    assert resumed.interruptions == []
    outputs = [
        item for item in fake_openai.requests[1]["input"] if item.get("type") == "function_call_output"
    ]
    assert [(o["call_id"], o["output"]) for o in outputs] == [
        ("call_email", "Email to bob@example.com sent.")
    ]
    assert fake_openai.remaining == 0


async def test_rejected_tool_call_is_not_executed(fake_openai: FakeOpenAI, pool: asyncpg.Pool) -> None:
    agent = make_agent()
    sid = session_id()
    states = RunStateStore(agent=agent, session_id=sid, pool=pool)
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_no"))
    paused = await run_agent(agent, "Email Bob", None, False, run_config=config(fake_openai))
    await states.save(paused.to_state())

    loaded = await states.load()
    assert loaded is not None
    loaded.reject(loaded.get_interruptions()[0], rejection_message="Not today.")
    fake_openai.script(text("Okay, I did not send it."))
    resumed = await run_agent(agent, loaded, None, False, run_config=config(fake_openai))

    assert resumed.final_output == "Okay, I did not send it."
    outputs = [
        item for item in fake_openai.requests[1]["input"] if item.get("type") == "function_call_output"
    ]
    assert len(outputs) == 1
    assert "Email to" not in outputs[0]["output"]


async def test_saved_json_is_exactly_what_the_sdk_wrote(fake_openai: FakeOpenAI, pool: asyncpg.Pool) -> None:
    agent = make_agent()
    sid = session_id()
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    paused = await run_agent(agent, "Email Bob", None, False, run_config=config(fake_openai))
    state = paused.to_state()
    expected = state.to_string()

    await RunStateStore(agent=agent, session_id=sid, pool=pool).save(state)

    row = await pool.fetchrow(
        """SELECT writer, schema_version, state_json FROM saved_run_states
           WHERE agent = $1 AND session_id = $2""",
        agent.name,
        sid,
    )
    assert row is not None
    assert row["state_json"].encode() == expected.encode()
    assert row["writer"] == "python"
    assert row["schema_version"] == str(json.loads(expected)["$schemaVersion"])


async def test_load_clear_and_isolation(fake_openai: FakeOpenAI, pool: asyncpg.Pool) -> None:
    agent = make_agent()
    sid = session_id()
    states = RunStateStore(agent=agent, session_id=sid, pool=pool)
    other_session = RunStateStore(agent=agent, session_id=session_id(), pool=pool)
    other_agent = RunStateStore(agent=make_agent(), session_id=sid, pool=pool)

    assert await states.load() is None

    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_first"))
    first = await run_agent(agent, "Email Bob", None, False, run_config=config(fake_openai))
    await states.save(first.to_state())
    assert await other_session.load() is None
    assert await other_agent.load() is None

    # A later save replaces the earlier one.
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_second"))
    second = await run_agent(agent, "Email Bob again", None, False, run_config=config(fake_openai))
    await states.save(second.to_state())
    loaded = await states.load()
    assert loaded is not None
    assert [item.call_id for item in loaded.get_interruptions()] == ["call_second"]
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM saved_run_states WHERE agent = $1 AND session_id = $2", agent.name, sid
        )
        == 1
    )

    await states.clear()
    assert await states.load() is None
    await states.clear()  # clearing nothing is fine
    assert await states.load() is None


# ----- PostgresSession ------------------------------------------------------------------------


async def test_session_add_get_pop_clear(pool: asyncpg.Pool) -> None:
    session = PostgresSession(session_id(), pool=pool)
    neighbour = PostgresSession(session_id(), pool=pool)
    await neighbour.add_items([user("not mine")])

    assert await session.get_items() == []
    assert await session.pop_item() is None

    await session.add_items([user("one"), user("two")])
    await session.add_items([])
    await session.add_items([user("three"), {"role": "assistant", "content": "four"}])

    assert await session.get_items() == [
        user("one"),
        user("two"),
        user("three"),
        {"role": "assistant", "content": "four"},
    ]
    assert await session.get_items(limit=2) == [user("three"), {"role": "assistant", "content": "four"}]
    assert await session.get_items(limit=10) == await session.get_items()

    assert await session.pop_item() == {"role": "assistant", "content": "four"}
    assert await session.get_items() == [user("one"), user("two"), user("three")]

    await session.clear_session()
    assert await session.get_items() == []
    assert await neighbour.get_items() == [user("not mine")]


async def test_a_replayed_segment_adds_its_session_items_once(pool: asyncpg.Pool) -> None:
    sid = session_id()
    original = PostgresSession(sid, pool=pool, replay_key="run_1/1")
    await original.add_items([user("one"), user("two")])
    await original.add_items([])  # adds nothing, and is not counted
    await original.add_items([user("three")])

    # The segment is replayed from the start (say, after a crash) with a new session object:
    # it repeats the same calls, then goes on further than the original got.
    replay = PostgresSession(sid, pool=pool, replay_key="run_1/1")
    await replay.add_items([user("one"), user("two")])
    await replay.add_items([user("three")])
    assert await replay.get_items() == [user("one"), user("two"), user("three")]
    await replay.add_items([user("four")])

    assert await original.get_items() == [user("one"), user("two"), user("three"), user("four")]
    # The next segment has a key of its own: what it adds is new.
    next_segment = PostgresSession(sid, pool=pool, replay_key="run_1/2")
    await next_segment.add_items([user("one")])
    assert await next_segment.get_items() == [
        user("one"),
        user("two"),
        user("three"),
        user("four"),
        user("one"),
    ]


async def test_a_replay_key_is_scoped_to_its_session(pool: asyncpg.Pool) -> None:
    first = PostgresSession(session_id(), pool=pool, replay_key="run_1/1")
    second = PostgresSession(session_id(), pool=pool, replay_key="run_1/1")

    await first.add_items([user("hello")])
    await second.add_items([user("hello")])

    assert await first.get_items() == [user("hello")]
    assert await second.get_items() == [user("hello")]


async def test_without_a_replay_key_every_add_appends(pool: asyncpg.Pool) -> None:
    sid = session_id()
    one = PostgresSession(sid, pool=pool)
    await one.add_items([user("hi")])
    await one.add_items([user("hi")])
    await PostgresSession(sid, pool=pool).add_items([user("hi")])

    assert await one.get_items() == [user("hi")] * 3
    keys = await pool.fetch("SELECT dedupe_key FROM session_items WHERE session_id = $1", sid)
    assert [row["dedupe_key"] for row in keys] == [None] * 3


async def test_two_runs_on_one_session_share_history(fake_openai: FakeOpenAI, pool: asyncpg.Pool) -> None:
    agent = make_agent()
    session = PostgresSession(session_id(), pool=pool)
    fake_openai.script(text("Nice to meet you, Ada."), text("Your name is Ada."))

    first = await run_agent(agent, "My name is Ada.", session, False, run_config=config(fake_openai))
    second = await run_agent(agent, "What is my name?", session, True, run_config=config(fake_openai))

    assert first.final_output == "Nice to meet you, Ada."
    assert second.final_output == "Your name is Ada."
    assert texts_of(fake_openai.requests[1]["input"]) == [
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]
    assert texts_of([dict(item) for item in await session.get_items()]) == [
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
        ("assistant", "Your name is Ada."),
    ]


# ----- without an explicit pool ---------------------------------------------------------------


@pytest.mark.usefixtures("shared_pool_env")
async def test_library_objects_use_the_shared_pool(
    fake_openai: FakeOpenAI, database_url: str, pool: asyncpg.Pool
) -> None:
    agent = make_agent()
    sid = session_id()
    session = PostgresSession(sid)
    states = RunStateStore(agent=agent, session_id=sid)

    await session.add_items([user("stored through the shared pool")])
    assert await PostgresSession(sid, pool=pool).get_items() == [user("stored through the shared pool")]

    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_shared"))
    paused = await run_agent(agent, "Email Bob", session, False, run_config=config(fake_openai))
    await states.save(paused.to_state())

    # The state landed in the PG_CONNECTION_URI database, where an explicit pool sees it.
    loaded = await RunStateStore(agent=agent, session_id=sid, pool=pool).load()
    assert loaded is not None
    assert [item.call_id for item in loaded.get_interruptions()] == ["call_shared"]
    reloaded = await states.load()
    assert reloaded is not None
    assert [item.call_id for item in reloaded.get_interruptions()] == ["call_shared"]
    assert await shared_pool() is await shared_pool()
    assert await (await shared_pool()).fetchval("SELECT current_database()") == database_url.rsplit("/", 1)[1]

    await states.clear()
    assert await RunStateStore(agent=agent, session_id=sid, pool=pool).load() is None
