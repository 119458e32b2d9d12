"""The run feed: a tenant's status changes, new interruptions and decisions across runs, in
commit order, read after a cursor (migration 0040 fills it).

An entry is visible to the feed once every transaction that could still store an entry before it
has finished: entries are read only below the reader's snapshot xmin, so a cursor never passes
an entry that commits later. A long transaction anywhere on the database server holds the feed
back (not the runs) until it ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from timestep.run_feed import FeedCursor, RunChange
from timestep.scope import Scope
from timestep.store.retry import retried
from timestep.store.rows import event_from_row

FEED_BATCH_SIZE = 200


@dataclass(frozen=True)
class FeedBatch:
    changes: list[RunChange]
    # Entries after these exist but wait for an older transaction to finish.
    held_back: bool


class RunFeed:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @retried
    async def head(self) -> FeedCursor:
        """A cursor before every entry that is not readable yet (the current position)."""
        xmin = await self._pool.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return FeedCursor(int(xmin))

    @retried
    async def after(self, scope: Scope, cursor: FeedCursor, limit: int = FEED_BATCH_SIZE) -> FeedBatch:
        """The scope's entries after `cursor`, oldest first, up to the first one not readable yet."""
        rows = await self._pool.fetch(
            """
            WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
            SELECT f.txid::text::bigint AS feed_txid, f.txid >= horizon.xmin AS held, r.agent, e.*
            FROM run_feed f
            CROSS JOIN horizon
            JOIN run_events e ON e.run_id = f.run_id AND e.sequence = f.sequence
            JOIN runs r ON r.id = f.run_id
            WHERE ($1::text IS NULL OR f.tenant = $1)
              AND (f.txid, f.run_id, f.sequence) > ($2::text::xid8, $3, $4)
            ORDER BY f.txid, f.run_id, f.sequence
            LIMIT $5
            """,
            scope.only,
            str(cursor.txid),
            cursor.run_id,
            cursor.sequence,
            limit,
        )
        changes: list[RunChange] = []
        for row in rows:
            if row["held"]:
                return FeedBatch(changes, held_back=True)
            position = FeedCursor(row["feed_txid"], row["run_id"], row["sequence"])
            changes.append(RunChange(position, row["agent"], event_from_row(row)))
        return FeedBatch(changes, held_back=False)
