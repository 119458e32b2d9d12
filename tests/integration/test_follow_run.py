"""follow_run: stored events after a cursor, then live events from the EventBus, exactly once and in
order, until the run stops. Real RunStore on PostgreSQL, real in-memory EventBus (and, across
replicas, real relayed buses on PostgreSQL LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import cast

import asyncpg
import pytest
from timestep.changes import SegmentOutcome
from timestep.domain import (
    EventKind,
    InterruptionStatus,
    NewInterruption,
    NewRun,
    PendingEvent,
    RunError,
    RunStatus,
    Snapshot,
    Usage,
)
from timestep.errors import FailedPreconditionError, NotFoundError
from timestep.event_types import RunEvent, TextDelta
from timestep.runs.apply import RunTransitions
from timestep.runs.events import EventBus
from timestep.runs.relay import relayed_bus
from timestep.runs.streaming import follow_run
from timestep.scope import Scope
from timestep.store.runs import RunStore


def follow(store: RunStore, bus: EventBus, run_id: str, after: int) -> AsyncGenerator[RunEvent, None]:
    return cast(AsyncGenerator[RunEvent, None], follow_run(store, bus, Scope.ALL, run_id, after))


WAIT = 10.0  # an upper bound so a bug fails the test instead of hanging it; never a sleep


async def next_event(stream: AsyncGenerator[RunEvent, None]) -> RunEvent:
    return await asyncio.wait_for(anext(stream), WAIT)


async def drain(stream: AsyncGenerator[RunEvent, None]) -> list[RunEvent]:
    async def collect() -> list[RunEvent]:
        return [event async for event in stream]

    return await asyncio.wait_for(collect(), WAIT)


def message(text: str) -> PendingEvent:
    return PendingEvent(EventKind.MESSAGE_OUTPUT, {"agent": "a", "text": text, "item_json": "{}"})


async def running_run(store: RunStore) -> str:
    run, _, _ = await store.create_run(NewRun(agent=f"follow_{uuid.uuid4().hex[:8]}", input="Hi"))
    running, _ = await RunTransitions(store).begin_segment(run.id, 1)  # events 1 (queued) and 2 (running)
    assert running is not None
    return run.id


async def finish(store: RunStore, run_id: str) -> list[RunEvent]:
    _, events = await RunTransitions(store).finish_segment(
        run_id,
        1,
        SegmentOutcome(status=RunStatus.COMPLETED, current_agent="a", usage=Usage(), final_output="ok"),
    )
    return events


async def test_a_stopped_run_replays_from_the_cursor_and_ends(store: RunStore) -> None:
    run_id = await running_run(store)
    await store.events.append_events(run_id, 1, [message("one")])
    await finish(store, run_id)
    stored = await store.events.list_events(run_id, 0)
    bus = EventBus()

    everything = await drain(follow(store, bus, run_id, 0))
    after_two = await drain(follow(store, bus, run_id, 2))

    assert everything == stored
    assert after_two == stored[2:]
    assert await drain(follow(store, bus, run_id, stored[-1].sequence)) == []
    assert bus.subscriber_count(run_id) == 0


async def test_live_events_follow_the_replay_exactly_once(store: RunStore) -> None:
    run_id = await running_run(store)
    bus = EventBus()
    stream = follow(store, bus, run_id, 0)

    assert [(await next_event(stream)).sequence for _ in range(2)] == [1, 2]
    assert bus.subscriber_count(run_id) == 1

    first = await store.events.append_events(run_id, 1, [message("a"), message("b")])  # 3, 4
    bus.publish(first)
    assert [(await next_event(stream)).sequence for _ in range(2)] == [3, 4]

    # A live-only delta passes through; re-published durable events are dropped.
    delta = RunEvent(run_id, 0, 1, TextDelta("a", "x", "msg_1"), datetime.now(UTC))
    second = await store.events.append_events(run_id, 1, [message("c")])  # 5
    bus.publish([*first, delta, *second])
    assert await next_event(stream) == delta
    assert (await next_event(stream)).sequence == 5

    # A missed publish (6 never published) is filled from the store.
    missed = await store.events.append_events(run_id, 1, [message("d")])  # 6
    published = await store.events.append_events(run_id, 1, [message("e")])  # 7
    bus.publish(published)
    assert [await next_event(stream) for _ in range(2)] == [*missed, *published]

    finished = await finish(store, run_id)
    bus.publish(finished)
    rest = await drain(stream)
    assert rest == finished
    assert rest[-1].stopped_status is RunStatus.COMPLETED
    assert bus.subscriber_count(run_id) == 0


async def test_a_follower_that_overflows_rereads_the_store(store: RunStore) -> None:
    run_id = await running_run(store)
    bus = EventBus(subscriber_buffer=2)
    stream = follow(store, bus, run_id, 0)
    assert [(await next_event(stream)).sequence for _ in range(2)] == [1, 2]

    burst = await store.events.append_events(run_id, 1, [message(str(n)) for n in range(5)])  # 3..7
    bus.publish(burst)  # more than the buffer holds: the subscriber is told to re-read
    finished = await finish(store, run_id)
    bus.publish(finished)

    rest = await drain(stream)

    assert rest == [*burst, *finished]
    assert [event.sequence for event in rest] == list(range(3, 3 + len(rest)))


async def test_following_an_unknown_run_fails_before_anything_is_sent(store: RunStore) -> None:
    bus = EventBus()

    with pytest.raises(NotFoundError):
        await next_event(follow(store, bus, "run_unknown", 0))

    assert bus.subscriber_count("run_unknown") == 0


async def test_a_nudge_makes_a_follower_read_events_stored_by_another_process(store: RunStore) -> None:
    run_id = await running_run(store)
    bus = EventBus()
    stream = follow(store, bus, run_id, 0)
    assert [(await next_event(stream)).sequence for _ in range(2)] == [1, 2]

    # Another process stores events: nothing is published here, only the nudge its
    # notification causes.
    elsewhere = await store.events.append_events(run_id, 1, [message("a"), message("b")])  # 3, 4
    bus.nudge(run_id)
    assert [await next_event(stream) for _ in range(2)] == elsewhere

    finished = await finish(store, run_id)
    bus.nudge(run_id)
    rest = await drain(stream)
    assert rest == finished
    assert rest[-1].stopped_status is RunStatus.COMPLETED
    assert bus.subscriber_count(run_id) == 0


async def test_a_follower_of_a_cancelled_running_run_stops_at_the_cancellation(store: RunStore) -> None:
    run_id = await running_run(store)
    bus = EventBus()
    stream = follow(store, bus, run_id, 0)
    assert [(await next_event(stream)).sequence for _ in range(2)] == [1, 2]

    _, cancelled = await RunTransitions(store).cancel_run(
        Scope.ALL, run_id, RunError("cancelled", "Stopped by the test.")
    )
    bus.publish(cancelled)

    assert await drain(stream) == cancelled
    assert cancelled[-1].stopped_status is RunStatus.CANCELLED
    # The segment that was running cannot add its outcome after the stop.
    with pytest.raises(FailedPreconditionError):
        await finish(store, run_id)
    assert await store.events.list_events(run_id, 2) == cancelled


async def test_a_resumed_run_is_followed_through_its_next_segment(store: RunStore) -> None:
    run_id = await running_run(store)
    _, paused = await RunTransitions(store).finish_segment(
        run_id,
        1,
        SegmentOutcome(
            status=RunStatus.INTERRUPTED,
            current_agent="a",
            usage=Usage(),
            snapshot=Snapshot("python", "1.0", "{}"),
            interruptions=[NewInterruption("a", "send_email", "call_1", "{}")],
        ),
    )
    interrupted = paused[-1]
    assert interrupted.stopped_status is RunStatus.INTERRUPTED
    bus = EventBus()
    # A follower that saw the run pause ends there...
    assert await drain(follow(store, bus, run_id, interrupted.sequence - 1)) == [interrupted]
    pending = (await store.get_run(Scope.ALL, run_id)).interruptions[0]
    _, decided = await RunTransitions(store).decide_interruption(
        Scope.ALL, run_id, pending.id, InterruptionStatus.APPROVED, always=False, message=""
    )
    queued_run, queued = await RunTransitions(store).queue_resume(Scope.ALL, run_id, "openai")

    # ...and one following on from the pause sees the decision and the next segment.
    stream = follow(store, bus, run_id, interrupted.sequence)
    assert [await next_event(stream) for _ in range(2)] == [*decided, *queued]
    assert (queued[0].segment, queued[0].payload["status"]) == (2, "queued")
    assert queued[0].stopped_status is None
    running, began = await RunTransitions(store).begin_segment(run_id, queued_run.segment_count)
    assert running is not None
    bus.publish(began)
    assert await next_event(stream) == began[0]
    _, finished = await RunTransitions(store).finish_segment(
        run_id, 2, SegmentOutcome(status=RunStatus.COMPLETED, current_agent="a", usage=Usage())
    )
    bus.publish(finished)
    rest = await drain(stream)
    assert rest == finished
    assert {event.segment for event in rest} == {2}


async def test_a_follower_on_another_replica_gets_stored_and_live_events(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """Two replicas in one test: each with its own relayed EventBus on the shared
    database. The run executes on `here`; its follower is on `there`."""
    here_store, there_store = RunStore(pool, origin="here"), RunStore(pool, origin="there")
    async with (
        relayed_bus(database_url, pool, "here") as here_bus,
        relayed_bus(database_url, pool, "there") as there_bus,
    ):
        run_id = await running_run(here_store)
        stream = follow(there_store, there_bus, run_id, 0)
        assert [(await next_event(stream)).sequence for _ in range(2)] == [1, 2]

        delta = RunEvent(run_id, 0, 1, TextDelta("a", "Hel", "msg_1"), datetime.now(UTC))
        here_bus.publish([delta])
        assert await next_event(stream) == delta

        stored = await here_store.events.append_events(run_id, 1, [message("Hello")])
        here_bus.publish(stored)
        assert await next_event(stream) == stored[0]

        finished = await finish(here_store, run_id)
        here_bus.publish(finished)
        assert await drain(stream) == finished
