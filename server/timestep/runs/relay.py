"""Run events across processes: several replicas share one database, and a subscriber on one
must see a run executing on another.

Stored events: the store NOTIFYs `timestep_run_events` with "origin:run_id:last_sequence" in
the transaction that stores them; every other process nudges its subscribers of that run to
re-read the store. A lost LISTEN connection is re-established, and then every subscriber re-reads
the store, since notifications sent meanwhile are lost. Live text deltas are NOTIFYed on
`timestep_run_deltas` as JSON, in order, off the model's path (a background sender), and
delivered to local subscribers elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime

import asyncpg

from timestep.domain import EventKind, RunEvent
from timestep.runs.events import EventBus, merge_text_deltas
from timestep.store.runs import EVENTS_CHANNEL

log = logging.getLogger(__name__)

DELTAS_CHANNEL = "timestep_run_deltas"
# NOTIFY payloads are limited to 8000 bytes; merged deltas stay well below (UTF-8, JSON escapes).
MAX_DELTA_CHARS = 1500
# Backoff between attempts to listen again after losing the LISTEN connection.
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 5.0


class EventRelay:
    def __init__(self, dsn: str, pool: asyncpg.Pool, bus: EventBus, origin: str) -> None:
        self._dsn = dsn
        self._pool = pool
        self._bus = bus
        self._origin = origin
        self._outbox: asyncio.Queue[RunEvent] = asyncio.Queue()
        self._listener: asyncpg.Connection | None = None
        self._sender: asyncio.Task[None] | None = None
        # Re-establishes the LISTEN connection after the database dropped it.
        self._relistener: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._listener = await self._listen()
        self._sender = asyncio.create_task(self._send_deltas(), name="timestep delta relay")
        self._bus.forward_live = self._outbox.put_nowait

    async def stop(self) -> None:
        self._stopping = True
        self._bus.forward_live = None
        for task in (self._sender, self._relistener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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

    def _on_stored(self, connection: object, pid: int, channel: str, payload: object) -> None:
        assert isinstance(payload, str)
        origin, run_id, _ = payload.rsplit(":", 2)
        if origin != self._origin:
            self._bus.nudge(run_id)

    def _on_delta(self, connection: object, pid: int, channel: str, payload: object) -> None:
        assert isinstance(payload, str)
        data = json.loads(payload)
        if data["origin"] == self._origin:
            return
        self._bus.deliver(
            RunEvent(
                run_id=data["run_id"],
                sequence=0,
                segment=data["segment"],
                kind=EventKind.TEXT_DELTA,
                payload=data["payload"],
                time=datetime.fromisoformat(data["time"]),
            )
        )

    async def _send_deltas(self) -> None:
        while True:
            # Everything queued meanwhile goes out together, consecutive deltas merged, so a
            # fast model costs a few notifications per batch rather than one per token.
            batch = [await self._outbox.get()]
            while not self._outbox.empty():
                event = self._outbox.get_nowait()
                merged = merge_text_deltas(batch[-1], event)
                if merged is not None and len(merged.payload["delta"]) <= MAX_DELTA_CHARS:
                    batch[-1] = merged
                else:
                    batch.append(event)
            for event in batch:
                await self._notify(event)

    async def _notify(self, event: RunEvent) -> None:
        message = {
            "origin": self._origin,
            "run_id": event.run_id,
            "segment": event.segment,
            "payload": event.payload,
            "time": event.time.isoformat(),
        }
        try:
            await self._pool.execute("SELECT pg_notify($1, $2)", DELTAS_CHANNEL, json.dumps(message))
        except Exception as error:
            # Live-only, so losing one is acceptable; losing the sender is not. After the database
            # dropped connections asyncpg can fail with errors of its own (InternalClientError).
            log.warning("could not relay a text delta of run %s: %s", event.run_id, error)
