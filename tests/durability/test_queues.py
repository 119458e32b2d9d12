"""Idempotent CreateRun, segments of providers without limits started at once, provider request
limits (held at each model request, across replicas) and concurrency limits, and queue positions,
on real server processes."""

from __future__ import annotations

import asyncio
import time
from typing import Final

import asyncpg
from timestep_client import RunStatus

from tests.durability.conftest import WAIT, LaunchReplica, follow_to_stop
from timestep_testing.fakes.openai_responses import FakeOpenAI, gate, text, tool_call
from timestep_testing.helpers import conversation, statuses

# How much later than its slot a model request may reach the fake: the slot's answer over
# loopback, then one HTTP request on an open connection from the same process. Milliseconds
# when idle; the rest allows for two busy cores delaying the server process's event loop.
REQUEST_JITTER_S: Final = 0.25


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


async def test_a_provider_request_limit_holds_for_every_model_request_across_replicas(
    launch: LaunchReplica, fake_openai: FakeOpenAI, durable_database: str
) -> None:
    limit = "openai:requests=2,period=1"
    first = await launch("limited-a", "--provider-limit", limit)
    second = await launch("limited-b", "--provider-limit", limit)
    slots = await asyncpg.connect(durable_database)
    try:
        await slots.execute(_LOG_SLOTS)
        # Runs that call the model twice (a tool call, then the answer) or more: the fake serves
        # turns in arrival order, and a run stops at its first answer.
        fake_openai.script(
            text("Warmed up."),
            text("Warmed up."),
            *(turn for n in range(6) for turn in (tool_call("get_weather", {"city": "Oslo"}), text(f"A{n}"))),
        )
        async with first.client() as on_first, second.client() as on_second:
            # A fresh process's first request is slower to leave it (first connections, lazy
            # imports): a run on each replica before the burst keeps that out of the timings.
            for client in (on_first, on_second):
                warm_up = await client.create_run("assistant", "Warm up.")
                await follow_to_stop(client, warm_up.id)
            burst_from = len(fake_openai.times)
            taken_before = await slots.fetchval("SELECT count(*) FROM test_slot_log")
            runs = [
                (client, await client.create_run("assistant", f"Weather {n}?"))
                for n in range(3)
                for client in (on_first, on_second)
            ]
            await asyncio.gather(*(follow_to_stop(client, run.id) for client, run in runs))
            finals = [await client.get_run(run.id) for client, run in runs]
        logged = await slots.fetch("SELECT taken_at FROM test_slot_log ORDER BY taken_at")
        taken = [row["taken_at"] for row in logged]
    finally:
        await slots.close()

    assert [run.status for run in finals] == [RunStatus.RUN_STATUS_COMPLETED] * 6
    assert sorted(run.final_output for run in finals) == [f"A{n}" for n in range(6)]
    assert len(fake_openai.times) - burst_from == 12
    # Every model request took a slot, and the slots (on the database's clock) hold the limit
    # exactly: no 3 of them within one second, whichever replica took them.
    assert len(taken) - taken_before == 12
    assert len(taken) == len(fake_openai.times)
    slot_spans = [(c - a).total_seconds() for a, c in zip(taken, taken[2:], strict=False)]
    assert min(slot_spans) >= 1.0, slot_spans
    # And so at the provider: any 3 consecutive requests span a second, less the time the
    # earliest of them took from its slot to the fake (REQUEST_JITTER_S).
    arrivals = sorted(fake_openai.times[burst_from:])
    spans = [later - earlier for earlier, later in zip(arrivals, arrivals[2:], strict=False)]
    assert min(spans) >= 1.0 - REQUEST_JITTER_S, spans
    assert arrivals[-1] - arrivals[0] >= 5 * (1.0 - REQUEST_JITTER_S)


async def test_a_model_call_replayed_after_a_crash_takes_no_request_slot(
    launch: LaunchReplica, fake_openai: FakeOpenAI, durable_database: str
) -> None:
    held = asyncio.Event()
    fake_openai.script(
        tool_call("get_weather", {"city": "Paris"}),
        gate(text("Never delivered."), held),
        text("Sunny in Paris."),
    )
    server = await launch("limited-recovery", "--provider-limit", "openai:requests=100,period=60")
    slots = await asyncpg.connect(durable_database)
    try:
        await slots.execute(_LOG_SLOTS)
        async with server.client() as client:
            run = await client.create_run("assistant", "Weather in Paris?")
            await fake_openai.wait_for_requests(2, WAIT)  # the second model call is in flight
            await server.restart()
            await follow_to_stop(client, run.id)
            final = await client.get_run(run.id)
        taken = await slots.fetchval("SELECT count(*) FROM test_slot_log")
    finally:
        await slots.close()

    assert final.status == RunStatus.RUN_STATUS_COMPLETED, final
    assert final.final_output == "Sunny in Paris."
    # The first call was replayed from the journal; the one cut off by the kill was sent again.
    assert len(fake_openai.requests) == 3
    assert taken == 3


# Copies each slot taken into a table of the test's own: the limiter deletes slots once they are
# older than the period.
_LOG_SLOTS: Final = """
CREATE TABLE test_slot_log (taken_at timestamptz NOT NULL);
CREATE FUNCTION test_log_slot() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_slot_log VALUES (NEW.taken_at);
    RETURN NEW;
END $$;
CREATE TRIGGER test_log_slot AFTER INSERT ON provider_request_slots
    FOR EACH ROW EXECUTE FUNCTION test_log_slot();
"""


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
