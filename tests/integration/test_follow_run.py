"""follow_run: stored events after a cursor, then live events from the EventBus, exactly once and in
order, until the run stops. Real RunStore on PostgreSQL, real in-memory EventBus."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import cast

import pytest
from timestep.domain import EventKind, NewRun, PendingEvent, RunEvent, RunStatus, Usage
from timestep.errors import NotFoundError
from timestep.runs.events import EventBus
from timestep.runs.streaming import follow_run
from timestep.store.runs import RunStore, SegmentOutcome


def follow(store: RunStore, bus: EventBus, run_id: str, after: int) -> AsyncGenerator[RunEvent, None]:
    return cast(AsyncGenerator[RunEvent, None], follow_run(store, bus, run_id, after))


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
    await store.start_segment(run.id)  # events 1 (queued) and 2 (running)
    return run.id


async def finish(store: RunStore, run_id: str) -> list[RunEvent]:
    _, events = await store.finish_segment(
        run_id,
        1,
        SegmentOutcome(status=RunStatus.COMPLETED, current_agent="a", usage=Usage(), final_output="ok"),
    )
    return events


async def test_a_stopped_run_replays_from_the_cursor_and_ends(store: RunStore) -> None:
    run_id = await running_run(store)
    await store.append_events(run_id, 1, [message("one")])
    await finish(store, run_id)
    stored = await store.list_events(run_id, 0)
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

    first = await store.append_events(run_id, 1, [message("a"), message("b")])  # 3, 4
    bus.publish(first)
    assert [(await next_event(stream)).sequence for _ in range(2)] == [3, 4]

    # A live-only delta passes through; re-published durable events are dropped.
    delta = RunEvent(run_id, 0, 1, EventKind.TEXT_DELTA, {"delta": "x"}, datetime.now(UTC))
    second = await store.append_events(run_id, 1, [message("c")])  # 5
    bus.publish([*first, delta, *second])
    assert await next_event(stream) == delta
    assert (await next_event(stream)).sequence == 5

    # A missed publish (6 never published) is filled from the store.
    missed = await store.append_events(run_id, 1, [message("d")])  # 6
    published = await store.append_events(run_id, 1, [message("e")])  # 7
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

    burst = await store.append_events(run_id, 1, [message(str(n)) for n in range(5)])  # 3..7
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
