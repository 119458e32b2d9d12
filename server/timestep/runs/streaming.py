"""Following a run: stored events after a cursor, exactly once and in order, then live events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from timestep.domain import EventKind, Run
from timestep.event_types import RunEvent
from timestep.runs.events import EventBus, Subscription
from timestep.scope import Scope
from timestep.store.events import EVENT_BATCH_SIZE
from timestep.store.runs import RunStore


async def follow_run(
    store: RunStore, bus: EventBus, scope: Scope, run_id: str, after_sequence: int
) -> AsyncIterator[RunEvent]:
    """Yield the run's events after `after_sequence` until the run stops (finishes or pauses).

    Subscribing before reading the store means no event can fall between the replay and the
    live feed; sequence numbers drop the duplicates that overlap.
    """
    with bus.subscribe(run_id) as subscription:
        run = await store.get_run(scope, run_id)  # NotFoundError before anything is sent
        async for event in _follow(store, subscription, run, after_sequence, replay_first=True):
            yield event


def follow_changed(store: RunStore, subscription: Subscription, run: Run) -> AsyncIterator[RunEvent]:
    """The events after `run` (as a transition left it) until the run stops, for a caller that
    subscribed before making that transition: every later event reaches the subscription, so
    the store is read only to fill a gap."""
    return _follow(store, subscription, run, run.last_sequence, replay_first=False)


async def _follow(
    store: RunStore, subscription: Subscription, run: Run, after_sequence: int, *, replay_first: bool
) -> AsyncIterator[RunEvent]:
    run_id = run.id
    last = after_sequence
    # Whether the newest status change replayed left the run stopped (None: none replayed).
    stopped: bool | None = None

    async def replay() -> AsyncIterator[RunEvent]:
        nonlocal last, stopped
        while True:
            batch = await store.events.list_events(run_id, last, EVENT_BATCH_SIZE)
            for event in batch:
                last = event.sequence
                if event.kind is EventKind.STATUS_CHANGED:
                    stopped = event.stopped_status is not None
                yield event
            if len(batch) < EVENT_BATCH_SIZE:
                return

    if replay_first:
        async for event in replay():
            yield event
    # A run that stopped after `run` was read has its stop status in the replay; its live
    # publication is a duplicate that would be skipped, so end here.
    if stopped or (run.status.is_stopped and last >= run.last_sequence):
        return
    while True:
        batch = await subscription.next_batch()
        if batch is None:  # fell behind: the durable events are all in the store
            async for event in replay():
                yield event
                if event.stopped_status:
                    return
            continue
        for event in batch:
            if event.is_durable:
                if event.sequence <= last:
                    continue
                if event.sequence > last + 1:  # a gap can only mean a missed publish: fill it
                    async for missed in replay():
                        yield missed
                        if missed.stopped_status:
                            return
                    continue
                last = event.sequence
            yield event
            if event.stopped_status:
                return
