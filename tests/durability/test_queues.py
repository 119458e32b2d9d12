"""Idempotent CreateRun, segments of providers without limits started at once, provider rate
limits and concurrency limits, and queue positions, on a real server process."""

from __future__ import annotations

import asyncio
import time
from typing import Final

import asyncpg
from timestep_client import RunStatus

from tests.durability.conftest import WAIT, LaunchReplica, follow_to_stop
from tests.e2e.helpers import conversation, statuses
from tests.fakes.openai_responses import FakeOpenAI, gate, text

# How much a 1-second window may shrink because the time from a run's start on the queue to its
# model request reaching the fake varies (two processes on two cores, under CI load: up to about
# 0.2 s was seen). Without the limit all ten requests arrive within a few tenths of a second.
WINDOW_TOLERANCE_S: Final = 0.3


async def test_concurrent_create_runs_with_one_request_id_make_one_run_and_one_model_call(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    held = asyncio.Event()
    fake_openai.script(gate(text("Said once."), held), text("A second run would get this."))
    server = await launch("idempotent")
    async with server.client() as client:
        created = await asyncio.gather(
            *(client.create_run("assistant", "Say it once.", request_id="order-42") for _ in range(10))
        )
        await fake_openai.wait_for_requests(1, WAIT)
        held.set()  # every CreateRun has returned while the one segment was in flight
        events = await follow_to_stop(client, created[0].id)
        listed = await client.list_runs(agent="assistant")
        final = await client.get_run(created[0].id)

    assert len({run.id for run in created}) == 1
    assert [run.id for run in listed.runs] == [created[0].id]
    assert final.status == RunStatus.RUN_STATUS_COMPLETED
    assert final.final_output == "Said once."
    assert len(fake_openai.requests) == 1
    assert fake_openai.remaining == 1
    assert statuses(events).count(RunStatus.RUN_STATUS_RUNNING) == 1


async def test_without_provider_limits_a_segment_starts_at_once_on_no_queue(
    launch: LaunchReplica, fake_openai: FakeOpenAI, durable_database: str
) -> None:
    fake_openai.script(text("Started at once."))
    server = await launch("unlimited")
    async with server.client() as client:
        created = await client.create_run("assistant", "No limits here.")
        await follow_to_stop(client, created.id)
        final = await client.get_run(created.id)
    connection = await asyncpg.connect(durable_database)
    try:
        workflow_queue = await connection.fetchval(
            "SELECT queue_name FROM dbos.workflow_status WHERE workflow_uuid = $1", f"{created.id}/segment-1"
        )
        queues = await connection.fetch("SELECT name FROM dbos.queues WHERE name LIKE 'timestep-%'")
    finally:
        await connection.close()

    assert created.status == RunStatus.RUN_STATUS_QUEUED
    assert (created.queue, created.queue_position) == ("", 0)
    assert final.status == RunStatus.RUN_STATUS_COMPLETED
    assert final.final_output == "Started at once."
    # Started directly (not enqueued), and no idle queue was registered to poll the database.
    assert workflow_queue is None
    assert [row["name"] for row in queues] == []


async def test_a_provider_rate_limit_spreads_a_burst_of_runs(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(text("Warmed up."), *(text(f"Answer {n}.") for n in range(10)))
    server = await launch("rate-limited", "--provider-limit", "openai:requests=2,period=1")
    async with server.client() as client:
        # A fresh process's first run is slower to reach the model (first connections, lazy
        # imports); a run before the burst keeps that out of the timings.
        warm_up = await client.create_run("assistant", "Warm up.")
        await follow_to_stop(client, warm_up.id)
        runs = await asyncio.gather(*(client.create_run("assistant", f"Question {n}.") for n in range(10)))
        await asyncio.gather(*(follow_to_stop(client, run.id) for run in runs))
        finals = await asyncio.gather(*(client.get_run(run.id) for run in runs))

    assert [run.status for run in finals] == [RunStatus.RUN_STATUS_COMPLETED] * 10
    assert sorted(run.final_output for run in finals) == sorted(f"Answer {n}." for n in range(10))
    assert len(fake_openai.times) == 11
    arrivals = sorted(fake_openai.times[1:])
    # At most 2 requests in any 1-second window: any 3 consecutive ones span (about) a second.
    spans = [later - earlier for earlier, later in zip(arrivals, arrivals[2:], strict=False)]
    assert min(spans) >= 1.0 - WINDOW_TOLERANCE_S, spans
    assert arrivals[-1] - arrivals[0] >= 4 * (1.0 - WINDOW_TOLERANCE_S)


async def test_a_run_behind_a_concurrency_limit_is_queued_with_its_position(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    held = asyncio.Event()
    fake_openai.script(gate(text("First done."), held), text("Second done."), text("Third done."))
    server = await launch("one-at-a-time", "--provider-limit", "openai:concurrency=1")
    async with server.client() as client:
        first = await client.create_run("assistant", "Task one.")
        await fake_openai.wait_for_requests(1, WAIT)  # the first run holds the only slot
        second = await client.create_run("assistant", "Task two.")
        third = await client.create_run("assistant", "Task three.")
        second_waiting = await client.get_run(second.id)
        third_waiting = await client.get_run(third.id)
        running = await client.get_run(first.id)
        requests_while_held = len(fake_openai.requests)
        released_at = time.monotonic()
        held.set()
        for run in (first, second, third):
            await follow_to_stop(client, run.id)
        finals = [await client.get_run(run.id) for run in (first, second, third)]

    assert running.status == RunStatus.RUN_STATUS_RUNNING
    assert running.queue == ""
    for waiting, position in ((second_waiting, 0), (third_waiting, 1)):
        assert waiting.status == RunStatus.RUN_STATUS_QUEUED, waiting
        assert waiting.queue == "timestep-openai"
        assert waiting.queue_position == position
    assert requests_while_held == 1
    assert [run.status for run in finals] == [RunStatus.RUN_STATUS_COMPLETED] * 3
    assert [run.final_output for run in finals] == ["First done.", "Second done.", "Third done."]
    # The queued runs started only after the first finished, in their order.
    assert min(fake_openai.times[1:]) > released_at
    assert [conversation(request)[-1] for request in fake_openai.requests] == [
        ("user", "Task one."),
        ("user", "Task two."),
        ("user", "Task three."),
    ]
