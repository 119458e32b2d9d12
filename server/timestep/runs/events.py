"""In-process fan-out of run events to StreamRunEvents subscribers.

Durable events are published after their transaction commits; live-only events (token
deltas) are published as they arrive. A subscriber that falls too far behind is not allowed
to hold memory or slow the publisher: its buffer is dropped and it is told to re-read the
durable events it missed from the store (token deltas in that gap are lost, by design). A
similar signal (`nudge`) tells subscribers that another process stored events of their run (see
`timestep.runs.relay`); it keeps the live events buffered before it, which the store does not
have. Tenant-wide watchers (`watch`) are only woken: they read the run feed from the store.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Protocol

from timestep.event_types import RunEvent, TextDelta

DEFAULT_SUBSCRIBER_BUFFER = 1024


def merge_text_deltas(first: RunEvent, second: RunEvent) -> RunEvent | None:
    """One text delta with both texts, when `second` continues `first` (same run, segment,
    agent and output item); None otherwise."""
    a, b = first.data, second.data
    if not isinstance(a, TextDelta) or not isinstance(b, TextDelta):
        return None
    if (first.run_id, first.segment, a.agent, a.item_id) != (
        second.run_id,
        second.segment,
        b.agent,
        b.item_id,
    ):
        return None
    return replace(first, data=replace(a, delta=a.delta + b.delta))


class Subscription:
    def __init__(self, run_id: str, limit: int, *, live: bool = True) -> None:
        self.run_id = run_id
        # Whether it takes live-only events (token deltas) too, or the stored ones only.
        self.live = live
        self._limit = limit
        self._buffer: deque[RunEvent] = deque()
        self._wakeup = asyncio.Event()
        self._overflowed = False

    def push(self, event: RunEvent) -> None:
        if self._buffer and (merged := merge_text_deltas(self._buffer[-1], event)) is not None:
            # A reader slower than the model gets fewer, longer deltas, never missing text.
            self._buffer[-1] = merged
        elif len(self._buffer) >= self._limit:
            self.reread()
            return
        else:
            self._buffer.append(event)
        self._wakeup.set()

    def reread(self) -> None:
        """Drop what is buffered; the subscriber will read the stored events from the store."""
        self._buffer.clear()
        self._overflowed = True
        self._wakeup.set()

    def nudge(self) -> None:
        """New events are in the store: the subscriber will read them from there. Buffered stored
        events are dropped (the store has them); buffered live ones are not (it has not), and
        come first."""
        self._buffer = deque(event for event in self._buffer if not event.is_durable)
        self._overflowed = True
        self._wakeup.set()

    async def next_batch(self) -> list[RunEvent] | None:
        """The events published since the last call; None: re-read the store (events were
        dropped, or stored by another process)."""
        await self._wakeup.wait()
        self._wakeup.clear()
        if self._buffer:
            batch = list(self._buffer)
            self._buffer.clear()
            if self._overflowed:
                self._wakeup.set()  # the re-read comes next
            return batch
        if self._overflowed:
            self._overflowed = False
            return None
        return []


class LiveForwarder(Protocol):
    """Where live-only events also go so that other processes' subscribers get them."""

    def forward(self, event: RunEvent) -> None: ...

    async def sent(self, run_id: str) -> None:
        """Return once the run's events forwarded so far have left this process."""
        ...


class EventBus:
    def __init__(
        self, subscriber_buffer: int = DEFAULT_SUBSCRIBER_BUFFER, *, forwarder: LiveForwarder | None = None
    ) -> None:
        self._subscriber_buffer = subscriber_buffer
        self._subscriptions: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._forwarder = forwarder
        # Tenant-wide watchers (WatchRuns): each is woken when any run has new stored events.
        self._watchers: set[asyncio.Event] = set()

    def publish(self, events: Iterable[RunEvent]) -> None:
        for event in events:
            if not event.is_durable and self._forwarder is not None:
                self._forwarder.forward(event)
            self.deliver(event)

    async def forwarded(self, run_id: str) -> None:
        """Return once the run's live events published so far have left this process. Call it
        before storing an event of the run: the store's notification of the stored event then
        cannot overtake them, so a subscriber elsewhere gets them before the event (and before
        the run's end, after which its stream is closed)."""
        if self._forwarder is not None:
            await self._forwarder.sent(run_id)

    def deliver(self, event: RunEvent) -> None:
        """Hand an event to this process's subscribers only."""
        if event.is_durable:
            self.wake_watchers()
        for subscription in self._subscriptions.get(event.run_id, ()):
            if event.is_durable or subscription.live:
                subscription.push(event)

    def nudge(self, run_id: str) -> None:
        """Tell the run's subscribers that new events are in the store."""
        self.wake_watchers()
        for subscription in self._subscriptions.get(run_id, ()):
            subscription.nudge()

    def nudge_all(self) -> None:
        """Tell every subscriber to re-read the store (after notifications may have been missed)."""
        self.wake_watchers()
        for run_id in list(self._subscriptions):
            self.nudge(run_id)

    def streams_live(self, run_id: str) -> bool:
        """Whether a subscriber here takes the run's live events (a stream following it)."""
        return any(subscription.live for subscription in self._subscriptions.get(run_id, ()))

    @contextmanager
    def subscribe(self, run_id: str, *, live: bool = True) -> Iterator[Subscription]:
        """Subscribe to the run's events; without `live`, to its stored ones only."""
        subscription = Subscription(run_id, self._subscriber_buffer, live=live)
        self._subscriptions[run_id].add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscriptions[run_id]
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscriptions[run_id]

    def wake_watchers(self) -> None:
        """Tell the tenant-wide watchers that some run has new stored events."""
        for watcher in self._watchers:
            watcher.set()

    @contextmanager
    def watch(self) -> Iterator[asyncio.Event]:
        """An event set whenever any run has new stored events; clear it before reading the store."""
        watcher = asyncio.Event()
        self._watchers.add(watcher)
        try:
            yield watcher
        finally:
            self._watchers.discard(watcher)

    def subscriber_count(self, run_id: str) -> int:
        return len(self._subscriptions.get(run_id, ()))
