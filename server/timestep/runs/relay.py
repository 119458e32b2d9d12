"""Run events across processes: several replicas share one database, and a subscriber on one
must see a run executing on another.

Stored events: the store NOTIFYs `timestep_run_events` with "origin:run_id:last_sequence" in
the transaction that stores them; every other process nudges its subscribers of that run to
re-read the store. A lost LISTEN connection is re-established, and then every subscriber re-reads
the store, since notifications sent meanwhile are lost.

Live text deltas are NOTIFYed on `timestep_run_deltas` as JSON, in order, off the model's path (a
background sender), and delivered to local subscribers elsewhere. PostgreSQL refuses a payload of
8000 bytes or more, so the sender measures each payload in bytes as it goes over the wire (UTF-8,
after the store's escape: `timestep.store.content`) and splits a delta that would not fit over
several notifications, in order, never inside a character.

No delta is dropped for a passing fault: a NOTIFY that fails (the database restarting,
connections dropped) is retried with a bounded backoff until it goes through or the relay stops,
holding back the later ones so order is kept. Each notification carries its sender and number, so
a retry of one that did go through (only its reply was lost) is not delivered twice. A
notification the database refuses as data can never succeed, so it is logged at ERROR and skipped
rather than holding up every later delta: it cannot be too large (payloads are budgeted), only
text the server's encoding cannot represent, which the store could not hold either. Nudging the
run's subscribers would not help them there: deltas are not stored, and the completed item
reaches them as a stored event anyway.

Before a run's events are stored, its deltas queued so far are sent (`EventBus.forwarded`), so
the stored events' notification cannot overtake them: a subscriber elsewhere gets the text before
the item it belongs to, and before the run's end closes its stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg

from timestep.domain import EventKind
from timestep.event_types import RunEvent, TextDelta, event_from_json
from timestep.runs.events import EventBus, merge_text_deltas
from timestep.store.content import escape, unescape
from timestep.store.events import EVENTS_CHANNEL

log = logging.getLogger(__name__)

DELTAS_CHANNEL = "timestep_run_deltas"
# PostgreSQL's NOTIFY payload limit is 8000 bytes; stay below it.
MAX_PAYLOAD_BYTES = 7900
# Consecutive deltas are merged up to this many characters (a character is at least one byte, so
# a longer merge would be split again anyway).
MAX_MERGED_CHARS = MAX_PAYLOAD_BYTES
# How long a run's stored events wait for its text deltas to be sent before them.
MAX_FLUSH_WAIT_S = 5.0
# Backoff between attempts to listen again after losing the LISTEN connection, and between
# attempts to send a delta.
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 5.0


def _is_high_surrogate(character: str) -> bool:
    return "\ud800" <= character <= "\udbff"


def _is_low_surrogate(character: str) -> bool:
    return "\udc00" <= character <= "\udfff"


def wire_size(text: str) -> int:
    """The bytes `text` takes as a query parameter (escaped by the connection's codec, UTF-8)."""
    return len(escape(text).encode())


def split_payloads(
    build: Callable[[str, int], str], delta: str, budget: int = MAX_PAYLOAD_BYTES
) -> list[str]:
    """`build(piece, index)` for consecutive pieces of `delta`, each payload at most `budget`
    bytes on the wire; the pieces concatenate to `delta`. ValueError if not even one character
    fits."""
    payloads: list[str] = []
    rest = delta
    while True:
        index = len(payloads)
        # A character takes at least a byte: no piece is longer than the budget.
        size = min(len(rest), budget)
        payload = build(rest[:size], index)
        while (over := wire_size(payload)) > budget:
            if size <= 1:
                raise ValueError(f"a text delta payload does not fit in {budget} bytes")
            overhead = wire_size(build("", index))
            # Shrink in proportion to the excess (few rounds: a character takes 1 to 8 bytes).
            size = max(1, min(size - 1, size * max(budget - overhead, 0) // max(over - overhead, 1)))
            payload = build(rest[:size], index)
        if 1 < size < len(rest) and _is_high_surrogate(rest[size - 1]) and _is_low_surrogate(rest[size]):
            size -= 1  # keep the halves of a surrogate pair together
            payload = build(rest[:size], index)
        payloads.append(payload)
        rest = rest[size:]
        if not rest:
            return payloads


class DeltaSender:
    """Sends this process's live text deltas to the other replicas (the bus's forwarder)."""

    def __init__(self, pool: asyncpg.Pool, origin: str) -> None:
        self._pool = pool
        self._origin = origin
        # Deltas to send, each with its ticket: tickets count up in the order deltas are queued.
        self._outbox: asyncio.Queue[tuple[int, RunEvent]] = asyncio.Queue()
        self._tickets = itertools.count(1)
        # The ticket of each run's latest delta not sent yet, and of the latest delta sent.
        self._unsent: dict[str, int] = {}
        self._sent_through = 0
        self._progress = asyncio.Condition()
        self._sender: asyncio.Task[None] | None = None
        self._stopping = False
        # This sender's deltas are numbered (and their parts, when split); a restarted process is
        # another sender.
        self._sender_id = uuid.uuid4().hex
        self._numbers = itertools.count(1)

    async def __aenter__(self) -> DeltaSender:
        self._sender = asyncio.create_task(self._send_deltas(), name="timestep delta relay")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stopping = True
        async with self._progress:
            self._progress.notify_all()  # nothing more will be sent: nobody waits for it
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    def forward(self, event: RunEvent) -> None:
        if self._stopping:
            return  # nothing sends it any more
        ticket = next(self._tickets)
        self._unsent[event.run_id] = ticket
        self._outbox.put_nowait((ticket, event))

    async def sent(self, run_id: str) -> None:
        """Return once the run's deltas queued so far are sent (or could not be), or after
        `MAX_FLUSH_WAIT_S`: the run's stored events wait for them, not forever."""
        ticket = self._unsent.get(run_id)
        if ticket is None:
            return
        async with self._progress:
            try:
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: self._stopping or self._sent_through >= ticket),
                    MAX_FLUSH_WAIT_S,
                )
            except TimeoutError:
                log.warning("text deltas of run %s are still being relayed; storing events anyway", run_id)

    async def _send_deltas(self) -> None:
        while True:
            # Everything queued meanwhile goes out together, consecutive deltas merged, so a
            # fast model costs a few notifications per batch rather than one per token.
            batch = [await self._outbox.get()]
            while not self._outbox.empty():
                ticket, event = self._outbox.get_nowait()
                merged = merge_text_deltas(batch[-1][1], event)
                if merged is not None and len(_text(merged).delta) <= MAX_MERGED_CHARS:
                    batch[-1] = (ticket, merged)
                else:
                    batch.append((ticket, event))
            for ticket, event in batch:
                for payload in self._payloads(event):
                    await self._notify(event, payload)
                if self._unsent.get(event.run_id) == ticket:
                    del self._unsent[event.run_id]
                async with self._progress:
                    self._sent_through = ticket
                    self._progress.notify_all()

    def _payloads(self, event: RunEvent) -> list[str]:
        """The notifications (JSON, unescaped) that carry `event`, in order."""
        number = next(self._numbers)
        text = _text(event)

        def build(delta: str, part: int) -> str:
            message: dict[str, Any] = {
                "origin": self._origin,
                "sender": self._sender_id,
                "n": [number, part],
                "run_id": event.run_id,
                "segment": event.segment,
                "payload": replace(text, delta=delta).to_json(),
                "time": event.time.isoformat(),
            }
            return json.dumps(message, ensure_ascii=False)

        try:
            return split_payloads(build, text.delta)
        except ValueError as error:
            log.error("cannot relay a text delta of run %s to other replicas: %s", event.run_id, error)
            return []

    async def _notify(self, event: RunEvent, payload: str) -> None:
        delay = RECONNECT_MIN_S
        while True:
            try:
                await self._pool.execute("SELECT pg_notify($1, $2)", DELTAS_CHANNEL, payload)
                return
            except asyncpg.DataError as error:
                log.error(
                    "the database refused a text delta of run %s; subscribers on other replicas miss it: %s",
                    event.run_id,
                    error,
                )
                return
            except Exception as error:
                # The database or the connection is away; asyncpg can also fail with errors of its
                # own after the database dropped connections (InternalClientError).
                log.warning(
                    "could not relay a text delta of run %s (%s); retrying in %.1fs",
                    event.run_id,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)  # backoff while the database is away
                delay = min(delay * 2, RECONNECT_MAX_S)


class EventRelay:
    """Delivers other replicas' events to this process's bus: nudges for stored events, live
    text deltas as they come."""

    def __init__(self, dsn: str, bus: EventBus, origin: str) -> None:
        self._dsn = dsn
        self._bus = bus
        self._origin = origin
        self._listener: asyncpg.Connection | None = None
        # Re-establishes the LISTEN connection after the database dropped it.
        self._relistener: asyncio.Task[None] | None = None
        self._stopping = False
        # The last notification delivered from each other origin: (sender, (number, part)).
        self._delivered: dict[str, tuple[str, tuple[int, int]]] = {}

    async def __aenter__(self) -> EventRelay:
        self._listener = await self._listen()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stopping = True
        if self._relistener is not None:
            self._relistener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relistener
        if self._listener is not None:
            await self._listener.close()

    async def _listen(self) -> asyncpg.Connection:
        listener = await asyncpg.connect(self._dsn)
        await listener.add_listener(EVENTS_CHANNEL, self._on_stored)
        await listener.add_listener(DELTAS_CHANNEL, self._on_delta)
        listener.add_termination_listener(self._on_lost)
        return listener

    def _on_lost(self, connection: object) -> None:
        if self._stopping or (self._relistener is not None and not self._relistener.done()):
            return
        log.warning("lost the connection that listens for other replicas' events; reconnecting")
        self._relistener = asyncio.create_task(self._relisten(), name="timestep relay reconnect")

    async def _relisten(self) -> None:
        delay = RECONNECT_MIN_S
        while True:
            try:
                self._listener = await self._listen()
                break
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("could not listen again (%s); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)  # backoff while the database is away
                delay = min(delay * 2, RECONNECT_MAX_S)
        # Whatever was notified while nobody listened is lost: every subscriber re-reads the store.
        self._bus.nudge_all()

    # Payloads arrive as sent, not through the connection's codecs: unescape them here.

    def _on_stored(self, connection: object, pid: int, channel: str, payload: object) -> None:
        assert isinstance(payload, str)
        origin, run_id, _ = unescape(payload).rsplit(":", 2)
        if origin != self._origin:
            self._bus.nudge(run_id)
        else:  # this process's subscribers got them; its watchers learn from the commit
            self._bus.wake_watchers()

    def _on_delta(self, connection: object, pid: int, channel: str, payload: object) -> None:
        assert isinstance(payload, str)
        data = json.loads(unescape(payload))
        origin = data["origin"]
        if origin == self._origin:
            return
        sender, (number, part) = data["sender"], data["n"]
        last = self._delivered.get(origin)
        if last is not None and last[0] == sender and (number, part) <= last[1]:
            return  # a retry of a notification that had gone through
        self._delivered[origin] = (sender, (number, part))
        self._bus.deliver(
            RunEvent(
                run_id=data["run_id"],
                sequence=0,
                segment=data["segment"],
                data=event_from_json(EventKind.TEXT_DELTA, data["payload"]),
                time=datetime.fromisoformat(data["time"]),
            )
        )


@contextlib.asynccontextmanager
async def relayed_bus(dsn: str, pool: asyncpg.Pool, origin: str) -> AsyncIterator[EventBus]:
    """This process's bus, its live events sent to the other replicas and theirs delivered to it."""
    async with DeltaSender(pool, origin) as deltas:
        bus = EventBus(forwarder=deltas)
        async with EventRelay(dsn, bus, origin):
            yield bus


def _text(event: RunEvent) -> TextDelta:
    """The text delta `event` carries (only text deltas are relayed)."""
    assert isinstance(event.data, TextDelta)
    return event.data
