"""Many messages on one session at once, through two replicas on one database: each multitask
strategy keeps its promise, and the database shows that no two runs of the session were ever
RUNNING at the same time."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Final

import asyncpg
import grpc
import pytest
from timestep_client import MultitaskStrategy, RunStatus, TimestepClient

from timestep_testing.fakes.openai_responses import FakeOpenAI, gate, text
from timestep_testing.harness import ServeProcess, connect, free_port, serve_environment
from timestep_testing.helpers import WAIT, collect_events, conversation, error_info, unique

CALLERS: Final = 20
# Twenty runs one after another, each a model call away.
ALL_DONE: Final = 60.0


@pytest.fixture
async def replicas(durable_database: str, fake_openai: FakeOpenAI) -> AsyncIterator[list[TimestepClient]]:
    """Clients of two `timestep serve` replicas on the test's database."""
    env = serve_environment(durable_database, fake_openai.base_url, "test")
    started = [
        ServeProcess(name, free_port(), ["--host", "127.0.0.1", "--replica-timeout", "3600"], env)
        for name in ("A", "B")
    ]
    await asyncio.gather(*(replica.start() for replica in started))
    clients = [connect(replica.address) for replica in started]
    try:
        yield clients
    finally:
        await asyncio.gather(*(client.close() for client in clients))
        await asyncio.gather(*(replica.end(signal.SIGTERM) for replica in started))


async def create_all(
    clients: list[TimestepClient], session: str, strategy: MultitaskStrategy
) -> list[str | grpc.aio.AioRpcError]:
    """CALLERS CreateRuns on one session at once, alternating replicas: each run's id, or the error."""

    async def create(caller: int) -> str | grpc.aio.AioRpcError:
        try:
            run = await clients[caller % 2].create_run(
                "assistant",
                f"message {caller}",
                session_id=session,
                multitask_strategy=strategy,
                timeout=WAIT,
            )
        except grpc.aio.AioRpcError as error:
            return error
        return run.id

    return list(await asyncio.gather(*(create(caller) for caller in range(CALLERS))))


async def runs_in_turn_order(database_url: str, session: str) -> list[tuple[str, str, str]]:
    """(run id, status, its message) of the session's runs, in the order they were admitted."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT id, status, input FROM runs WHERE session_id = $1 ORDER BY session_seq", session
        )
    finally:
        await connection.close()
    return [(row["id"], row["status"], json.loads(row["input"])) for row in rows]


async def running_intervals(database_url: str, session: str) -> list[tuple[datetime, datetime, str]]:
    """When each run of the session was RUNNING (from its status events), by start."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            """SELECT e.run_id, e.create_time, e.payload->>'status' AS status
               FROM run_events e JOIN runs r ON r.id = e.run_id
               WHERE r.session_id = $1 AND e.kind = 'status_changed' ORDER BY e.run_id, e.sequence""",
            session,
        )
    finally:
        await connection.close()
    intervals, began = [], {}
    for row in rows:
        if row["status"] == "running":
            began[row["run_id"]] = row["create_time"]
        elif row["run_id"] in began:
            intervals.append((began.pop(row["run_id"]), row["create_time"], row["run_id"]))
    assert not began, f"runs still RUNNING: {began}"
    return sorted(intervals)


def assert_never_two_running(intervals: list[tuple[datetime, datetime, str]]) -> None:
    for (_, end, earlier), (start, _, later) in itertools.pairwise(intervals):
        assert start >= end, f"{later} began RUNNING at {start}, before {earlier} stopped at {end}"


async def settle(clients: list[TimestepClient], run_ids: list[str]) -> None:
    """Wait until each run has stopped."""
    await asyncio.wait_for(
        asyncio.gather(*(collect_events(clients[0], run_id, timeout=ALL_DONE) for run_id in run_ids)),
        ALL_DONE,
    )


async def test_enqueue_runs_every_message_one_at_a_time_in_arrival_order_each_seeing_the_earlier_ones(
    replicas: list[TimestepClient], fake_openai: FakeOpenAI, durable_database: str
) -> None:
    session = unique("session")
    fake_openai.script(*(text(f"answer {n}") for n in range(CALLERS)))

    created = await create_all(replicas, session, MultitaskStrategy.MULTITASK_STRATEGY_ENQUEUE)
    assert all(isinstance(outcome, str) for outcome in created), created
    await settle(replicas, [outcome for outcome in created if isinstance(outcome, str)])

    runs = await runs_in_turn_order(durable_database, session)
    assert [status for _, status, _ in runs] == ["completed"] * CALLERS
    assert_never_two_running(await running_intervals(durable_database, session))
    ran = [run_id for _, _, run_id in await running_intervals(durable_database, session)]
    assert ran == [run_id for run_id, _, _ in runs], "runs started out of arrival order"
    messages = [message for _, _, message in runs]
    for turn, request in enumerate(fake_openai.requests):
        said = [content for role, content in conversation(request) if role == "user"]
        assert said == messages[: turn + 1], f"model request {turn} saw {said}"


async def test_reject_accepts_exactly_one_message_of_a_busy_session(
    replicas: list[TimestepClient], fake_openai: FakeOpenAI, durable_database: str
) -> None:
    session, release = unique("session"), asyncio.Event()
    fake_openai.script(gate(text("the only answer"), release))

    created = await create_all(replicas, session, MultitaskStrategy.MULTITASK_STRATEGY_REJECT)
    release.set()

    [accepted] = [outcome for outcome in created if isinstance(outcome, str)]
    refused = [outcome for outcome in created if isinstance(outcome, grpc.aio.AioRpcError)]
    assert len(refused) == CALLERS - 1
    for error in refused:
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        info = error_info(error)
        assert (info.reason, info.metadata["run_id"]) == ("SESSION_BUSY", accepted)
    await settle(replicas, [accepted])
    assert [run_id for run_id, _, _ in await runs_in_turn_order(durable_database, session)] == [accepted]


@pytest.mark.parametrize(
    "strategy",
    [MultitaskStrategy.MULTITASK_STRATEGY_INTERRUPT, MultitaskStrategy.MULTITASK_STRATEGY_ROLLBACK],
    ids=["INTERRUPT", "ROLLBACK"],
)
async def test_interrupt_and_rollback_leave_the_last_message_running_and_the_history_they_promise(
    replicas: list[TimestepClient],
    fake_openai: FakeOpenAI,
    durable_database: str,
    strategy: MultitaskStrategy,
) -> None:
    session = unique("session")
    fake_openai.script(*(text(f"answer {n}") for n in range(CALLERS)))

    created = await create_all(replicas, session, strategy)
    run_ids = [outcome for outcome in created if isinstance(outcome, str)]
    assert len(run_ids) == CALLERS, created
    await settle(replicas, run_ids)

    runs = await runs_in_turn_order(durable_database, session)
    intervals = await running_intervals(durable_database, session)
    assert_never_two_running(intervals)
    *earlier, (last, last_status, last_message) = runs
    assert last_status == "completed"
    # A run completed only if it finished before the next message arrived; every other was cancelled.
    assert {status for _, status, _ in earlier} <= {"completed", "cancelled"}
    began = {run_id for _, _, run_id in intervals}
    items = [item async for item in replicas[0].session_items(session)]
    by_run = [item.run_id for item in items]
    assert by_run == sorted(by_run, key=[run_id for run_id, _, _ in runs].index), "items of runs interleave"
    last_items = [json.loads(item.item_json) for item in items if item.run_id == last]
    assert [item["role"] for item in last_items] == ["user", "assistant"]
    for run_id, status, message in earlier:
        mine = [json.loads(item.item_json) for item in items if item.run_id == run_id]
        if status == "completed":
            assert len(mine) == 2
        elif strategy == MultitaskStrategy.MULTITASK_STRATEGY_ROLLBACK or run_id not in began:
            assert mine == [], f"{run_id} ({status}) left {mine}"
        else:  # INTERRUPT keeps what a cancelled run had stored: its message, maybe its answer
            assert len(mine) <= 2, mine
            assert [item.get("content") for item in mine[:1]] in ([], [message]), mine
    assert last_message in {f"message {n}" for n in range(CALLERS)}
    assert (await replicas[1].get_run(last)).status == RunStatus.RUN_STATUS_COMPLETED
