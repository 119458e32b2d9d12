"""A message arriving while its session is busy: each multitask strategy (REJECT, ENQUEUE,
INTERRUPT, ROLLBACK) does what it promises, an INTERRUPTED run holds its session, and the
session's history never mixes two runs' items."""

from __future__ import annotations

import asyncio
import json

import grpc
from timestep_client import MultitaskStrategy, RunStatus, TimestepClient

from timestep_testing.fakes.openai_responses import FakeOpenAI, gate, text, tool_call
from timestep_testing.helpers import (
    EMAIL_ARGS,
    WAIT,
    collect_events,
    conversation,
    error_info,
    expect_rpc_error,
    of_kind,
    pending,
    unique,
)


async def busy_session(client: TimestepClient, fake: FakeOpenAI, release: asyncio.Event) -> tuple[str, str]:
    """A session whose run is RUNNING, its model answer held until `release`; (session, run id)."""
    session = unique("session")
    fake.script(gate(text("First answer."), release))
    first = await client.create_run("assistant", "First message.", session_id=session)
    await fake.wait_for_requests(1)
    assert (await client.get_run(first.id)).status == RunStatus.RUN_STATUS_RUNNING
    return session, first.id


async def items_of(client: TimestepClient, session: str) -> list[tuple[str, str]]:
    """(run id, text) of each item of the session's history."""
    found = []
    async for item in client.session_items(session):
        data = json.loads(item.item_json)
        content = data.get("content")
        said = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
        found.append((item.run_id, said))
    return found


async def test_enqueue_waits_for_the_active_run_then_sees_its_items(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    release = asyncio.Event()
    session, first = await busy_session(client, fake_openai, release)
    fake_openai.script(text("Second answer."))

    second = await client.create_run(
        "assistant",
        "Second message.",
        session_id=session,
        multitask_strategy=MultitaskStrategy.MULTITASK_STRATEGY_ENQUEUE,
    )

    assert second.status == RunStatus.RUN_STATUS_QUEUED
    release.set()
    events = await collect_events(client, second.id)
    assert of_kind(events, "status_changed")[0].reason == f"waiting for run {first}"
    assert (await client.get_run(first)).status == RunStatus.RUN_STATUS_COMPLETED
    assert (await client.get_run(second.id)).status == RunStatus.RUN_STATUS_COMPLETED
    assert conversation(fake_openai.requests[1]) == [
        ("user", "First message."),
        ("assistant", "First answer."),
        ("user", "Second message."),
    ]


async def test_reject_refuses_a_second_run_naming_the_active_one_and_writes_nothing(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    release = asyncio.Event()
    session, first = await busy_session(client, fake_openai, release)

    error = await expect_rpc_error(
        client.create_run(
            "assistant",
            "Again?",
            session_id=session,
            multitask_strategy=MultitaskStrategy.MULTITASK_STRATEGY_REJECT,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    release.set()

    info = error_info(error)
    assert (info.reason, info.metadata["run_id"]) == ("SESSION_BUSY", first)
    assert [r.id for r in (await client.list_runs(session_id=session)).runs] == [first]
    await collect_events(client, first)
    assert (await client.get_run(first)).status == RunStatus.RUN_STATUS_COMPLETED


async def test_interrupt_cancels_the_active_run_keeps_its_items_and_starts_at_once(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    release = asyncio.Event()
    session, first = await busy_session(client, fake_openai, release)
    fake_openai.script(text("Second answer."))

    second = await client.create_run(
        "assistant",
        "Second message.",
        session_id=session,
        multitask_strategy=MultitaskStrategy.MULTITASK_STRATEGY_INTERRUPT,
        wait=True,
    )
    release.set()

    cancelled = await client.get_run(first)
    assert cancelled.status == RunStatus.RUN_STATUS_CANCELLED
    assert cancelled.error.message == f"Interrupted by run {second.id} (multitask strategy INTERRUPT)."
    assert second.status == RunStatus.RUN_STATUS_COMPLETED
    assert conversation(fake_openai.requests[1]) == [("user", "First message."), ("user", "Second message.")]
    assert await items_of(client, session) == [
        (first, "First message."),
        (second.id, "Second message."),
        (second.id, "Second answer."),
    ]


async def test_rollback_cancels_the_active_run_and_removes_its_items(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    release = asyncio.Event()
    session, first = await busy_session(client, fake_openai, release)
    fake_openai.script(text("Second answer."))

    second = await client.create_run(
        "assistant",
        "Second message.",
        session_id=session,
        multitask_strategy=MultitaskStrategy.MULTITASK_STRATEGY_ROLLBACK,
        wait=True,
    )
    release.set()

    assert (await client.get_run(first)).status == RunStatus.RUN_STATUS_CANCELLED
    assert conversation(fake_openai.requests[1]) == [("user", "Second message.")]
    assert await items_of(client, session) == [(second.id, "Second message."), (second.id, "Second answer.")]


async def test_an_interrupted_run_holds_its_session_until_it_is_resumed_and_finishes(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("session")
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    paused = await client.create_run("assistant", "Email Bob.", session_id=session, wait=True)
    assert paused.status == RunStatus.RUN_STATUS_INTERRUPTED
    queued = await client.create_run("assistant", "Then what?", session_id=session)
    assert (await client.get_run(queued.id)).status == RunStatus.RUN_STATUS_QUEUED

    await client.approve(paused.id, pending(paused)[0].id)
    fake_openai.script(text("Emailed Bob."), text("Nothing else."))
    await client.resume(paused.id)
    events = await collect_events(client, queued.id)

    assert of_kind(events, "status_changed")[-1].status == RunStatus.RUN_STATUS_COMPLETED
    assert (await client.get_run(paused.id)).status == RunStatus.RUN_STATUS_COMPLETED
    said = [content for _, content in conversation(fake_openai.requests[-1])]
    assert said == ["Email Bob.", "Emailed Bob.", "Then what?"]


async def test_deleting_the_interrupted_run_that_holds_a_session_lets_the_next_one_start(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("session")
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    paused = await client.create_run("assistant", "Email Bob.", session_id=session, wait=True)
    queued = await client.create_run("assistant", "Never mind.", session_id=session)
    fake_openai.script(text("OK."))

    await client.delete_run(paused.id)

    events = await collect_events(client, queued.id, timeout=WAIT)
    assert of_kind(events, "status_changed")[-1].status == RunStatus.RUN_STATUS_COMPLETED
    assert conversation(fake_openai.requests[-1]) == [("user", "Never mind.")]
