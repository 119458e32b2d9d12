"""DeleteRun and DeleteSession: every row of a deleted run goes (DBOS's included), nothing else
changes, a deleted run is NOT_FOUND everywhere, and a run that is executing is only deleted when
forced (which cancels it first)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
import grpc
import pytest
from timestep import PostgresSession, RunStateStore, ids, run_agent
from timestep.api.auth import DEFAULT_TENANT
from timestep.app import TimestepService
from timestep.examples.agents import AGENTS
from timestep.runtime.providers import ModelConfig
from timestep_client import RunStatus, TimestepClient

from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, gate, text, tool_call
from timestep_testing.harness import assert_no_secret_anywhere, database_fingerprint
from timestep_testing.helpers import (
    EMAIL_ARGS,
    collect_events,
    error_info,
    expect_rpc_error,
    in_process_run_config,
    unique,
)

# Columns that change with nobody calling, left out of the database fingerprint.
CHANGE_ON_THEIR_OWN: Final = {"public.replicas": ["heartbeat_time"]}


@pytest.fixture
async def own_service(
    start_service: StartService, model_config: ModelConfig, durable_database: str
) -> AsyncIterator[TimestepService]:
    """A service on a database of its own: its fingerprint holds only what the test did."""
    async with start_service(model_config, database_url=durable_database) as service:
        yield service


@pytest.fixture
async def own_client(own_service: TimestepService) -> AsyncIterator[TimestepClient]:
    async with TimestepClient(f"127.0.0.1:{own_service.port}") as connected:
        yield connected


async def test_deleting_a_run_leaves_no_row_naming_it_and_changes_nothing_else(
    own_client: TimestepClient, fake_openai: FakeOpenAI, durable_database: str
) -> None:
    client, session = own_client, unique("session")
    fake_openai.script(text("kept answer"), tool_call("send_email", EMAIL_ARGS), text("Sent."))
    kept = await client.create_run("assistant", "hello", session_id=session, wait=True)
    before = await database_fingerprint(durable_database, CHANGE_ON_THEIR_OWN)

    doomed = await client.create_run("assistant", "Email Bob", session_id=session, wait=True)
    await client.approve(doomed.id, doomed.interruptions[0].id)
    doomed = await client.resume(doomed.id, wait=True)
    assert doomed.status == RunStatus.RUN_STATUS_COMPLETED
    deleted = await client.delete_run(doomed.id)

    assert deleted.deleted
    assert deleted.deleted_session_items >= 4
    await assert_no_secret_anywhere(durable_database, [doomed.id])
    after = await database_fingerprint(durable_database, CHANGE_ON_THEIR_OWN)
    assert sorted(t for t in before if before[t] != after.get(t)) == []
    for call in (
        client.get_run(doomed.id),
        client.delete_run(doomed.id),
        client.resume(doomed.id),
        client.cancel(doomed.id),
        client.get_state(doomed.id),
    ):
        error = await expect_rpc_error(call, grpc.StatusCode.NOT_FOUND)
        assert error_info(error).reason == "RUN_NOT_FOUND"
    await expect_rpc_error(collect_events(client, doomed.id), grpc.StatusCode.NOT_FOUND)
    assert (await client.delete_run(doomed.id, allow_missing=True)).deleted is False
    assert [r.id for r in (await client.list_runs(session_id=session)).runs] == [kept.id]
    assert (await client.get_session(session)).item_count == 2


async def test_a_deleted_runs_usage_no_longer_counts(
    own_client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    client = own_client
    start = datetime.now(UTC) - timedelta(minutes=1)
    fake_openai.script(text("one"), text("two"))
    first = await client.create_run("assistant", "a", wait=True)
    await client.create_run("assistant", "b", wait=True)
    both = await client.get_usage(start_time=start)

    await client.delete_run(first.id)

    left = await client.get_usage(start_time=start)
    assert left.run_count == both.run_count - 1
    assert left.total.total_tokens == both.total.total_tokens - first.usage.total_tokens


async def test_a_running_run_is_deleted_only_with_force_which_cancels_it_first(
    own_client: TimestepClient, fake_openai: FakeOpenAI, durable_database: str
) -> None:
    client, release = own_client, asyncio.Event()
    fake_openai.script(gate(text("too late"), release))
    run = await client.create_run("assistant", "think slowly", session_id=unique("session"))
    await fake_openai.wait_for_requests(1)

    error = await expect_rpc_error(client.delete_run(run.id), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_info(error).reason == "RUN_ACTIVE"
    assert (await client.get_run(run.id)).status == RunStatus.RUN_STATUS_RUNNING

    assert (await client.delete_run(run.id, force=True)).deleted
    release.set()
    await expect_rpc_error(client.get_run(run.id), grpc.StatusCode.NOT_FOUND)
    await assert_no_secret_anywhere(durable_database, [run.id])


async def test_deleting_a_session_with_its_runs_erases_the_conversation(
    own_client: TimestepClient, fake_openai: FakeOpenAI, durable_database: str
) -> None:
    client, session, other = own_client, unique("session"), unique("other")
    fake_openai.script(text("one"), text("two"), text("elsewhere"))
    runs = [await client.create_run("assistant", m, session_id=session, wait=True) for m in ("a", "b")]
    await client.create_run("assistant", "c", session_id=other, wait=True)
    before = await _other_rows(durable_database, other)

    deleted = await client.delete_session(session, delete_runs=True)

    assert (deleted.deleted_runs, deleted.deleted_items) == (2, 4)
    await assert_no_secret_anywhere(durable_database, [session, *(run.id for run in runs)])
    assert await _other_rows(durable_database, other) == before
    error = await expect_rpc_error(client.get_session(session), grpc.StatusCode.NOT_FOUND)
    assert error_info(error).reason == "SESSION_NOT_FOUND"
    await expect_rpc_error(client.delete_session(session), grpc.StatusCode.NOT_FOUND)
    assert (await client.delete_session(session, allow_missing=True)).deleted_items == 0


async def test_deleting_a_session_erases_what_a_library_program_saved_under_its_key(
    own_service: TimestepService, own_client: TimestepClient, fake_openai: FakeOpenAI, durable_database: str
) -> None:
    """A program using the library on the service's key of a session (`ids.scoped`) shares its
    history, and may keep its paused RunState next to it (RunStateStore): both go with the
    session."""
    client, session = own_client, unique("session")
    key, [assistant] = ids.scoped(DEFAULT_TENANT, session), [a for a in AGENTS if a.name == "assistant"]
    fake_openai.script(text("Hello Ada."), tool_call("send_email", EMAIL_ARGS, call_id=unique("call")))
    await client.create_run("assistant", "My name is Ada.", session_id=session, wait=True)
    history = PostgresSession(key, own_service.pool)
    paused = await run_agent(
        assistant, "Email Bob", history, False, run_config=in_process_run_config(fake_openai)
    )
    states = RunStateStore(assistant, key, pool=own_service.pool)
    await states.save(paused.to_state())

    deleted = await client.delete_session(session, delete_runs=True)

    assert deleted.deleted_runs == 1
    await assert_no_secret_anywhere(durable_database, [session])
    assert await states.load() is None
    assert await history.get_items() == []


async def test_deleting_only_a_sessions_history_keeps_its_runs(
    own_client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    client, session = own_client, unique("session")
    fake_openai.script(text("one"), text("I do not know."))
    first = await client.create_run("assistant", "My name is Ada.", session_id=session, wait=True)

    deleted = await client.delete_session(session)

    assert (deleted.deleted_runs, deleted.deleted_items) == (0, 2)
    assert (await client.get_run(first.id)).status == RunStatus.RUN_STATUS_COMPLETED
    got = await client.get_session(session)
    assert (got.run_count, got.item_count) == (1, 0)
    await client.create_run("assistant", "What is my name?", session_id=session, wait=True)
    assert len(fake_openai.requests[-1]["input"]) == 1


async def test_a_session_with_a_running_run_is_refused_naming_the_run_unless_forced(
    own_client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    client, session, release = own_client, unique("session"), asyncio.Event()
    fake_openai.script(gate(text("too late"), release))
    run = await client.create_run("assistant", "think slowly", session_id=session)
    await fake_openai.wait_for_requests(1)

    error = await expect_rpc_error(
        client.delete_session(session, delete_runs=True), grpc.StatusCode.FAILED_PRECONDITION
    )
    info = error_info(error)
    assert (info.reason, info.metadata["run_id"]) == ("SESSION_ACTIVE", run.id)

    deleted = await client.delete_session(session, delete_runs=True, force=True)
    release.set()
    assert deleted.deleted_runs == 1
    await expect_rpc_error(client.get_run(run.id), grpc.StatusCode.NOT_FOUND)


async def _other_rows(database_url: str, session: str) -> list[tuple[str, int]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            """SELECT r.id, (SELECT count(*) FROM run_events e WHERE e.run_id = r.id) AS events
               FROM runs r WHERE r.session_id = $1 ORDER BY r.id""",
            session,
        )
        items = await connection.fetchval(
            "SELECT count(*) FROM session_items WHERE session_id LIKE '%/' || $1", session
        )
    finally:
        await connection.close()
    return [(row["id"], row["events"]) for row in rows] + [("items", items)]
