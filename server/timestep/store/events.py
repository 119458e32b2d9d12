"""The event store: a run's events in PostgreSQL, appended with gapless sequences and announced
to other processes with NOTIFY, and read back by sequence.

Transitions of the run store append their events through `append_in`, inside their own
transaction; a running segment appends its own with `append_events`.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from timestep.domain import PendingEvent
from timestep.event_types import RunEvent
from timestep.store.content import escape_texts
from timestep.store.retry import retried
from timestep.store.rows import Connection, event_from_row, run_not_found

# Other processes LISTEN here to learn that a run has new stored events
# ("origin:run_id:last_sequence").
EVENTS_CHANNEL = "timestep_run_events"

EVENT_BATCH_SIZE = 500


class EventStore:
    def __init__(self, pool: asyncpg.Pool, origin: str = "") -> None:
        self._pool = pool
        # Names this process in change notifications, so it can ignore its own.
        self.origin = origin

    @retried
    async def list_events(
        self, run_id: str, after_sequence: int, limit: int = EVENT_BATCH_SIZE
    ) -> list[RunEvent]:
        """Events after `after_sequence`, in order. Waits out the database, so an open event
        stream carries on across dropped connections instead of ending."""
        rows = await self._pool.fetch(
            "SELECT * FROM run_events WHERE run_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
            run_id,
            after_sequence,
            limit,
        )
        return [event_from_row(row) for row in rows]

    @retried
    async def append_events(
        self, run_id: str, segment: int, events: Sequence[PendingEvent]
    ) -> list[RunEvent]:
        """Store events of a RUNNING segment. Events of a segment whose run has moved on (it was
        cancelled while the segment was still executing somewhere) are dropped: nothing may
        follow a run's final status."""
        try:
            async with self._pool.acquire() as connection:
                return await self.append_in(connection, run_id, segment, events, segment_running=True)
        except asyncpg.NoDataFoundError:
            raise run_not_found(run_id) from None

    async def append_in(
        self,
        connection: Connection,
        run_id: str,
        segment: int,
        events: Sequence[PendingEvent],
        *,
        segment_running: bool = False,
    ) -> list[RunEvent]:
        """Store events with the next sequences, skipping those whose dedupe key is stored already
        (a replayed segment re-emitting them), and notify other processes after commit; one
        round trip (`timestep_append_events`, migration 0006).

        The caller holds the run's row lock (or inserted the row in this transaction), so
        sequences are assigned one appender at a time; with `segment_running` the function takes
        the lock and stores nothing unless the run is RUNNING in `segment`."""
        if not events:
            return []
        rows = await connection.fetch(
            "SELECT * FROM timestep_append_events($1, $2, $3, $4, $5, $6, $7, $8)",
            run_id,
            segment,
            escape_texts([e.kind.value for e in events]),
            [e.payload for e in events],
            escape_texts([e.dedupe_key for e in events]),
            EVENTS_CHANNEL,
            f"{self.origin}:{run_id}:",
            segment_running,
        )
        return sorted((event_from_row(row) for row in rows), key=lambda e: e.sequence)
