"""The run feed: a tenant's status changes, new interruptions and decisions across runs, in
commit order, read after a cursor (migration 0040 fills it).

An entry is read once no transaction that could still store an entry before it is running: only
entries below a horizon, the oldest transaction of this database still running (or, if none, the
next transaction id), so a cursor never passes an entry that commits later. Transactions known to
belong to other databases on the server are left out of the horizon (they store no entries
here); a long transaction in this database holds the feed back (not the runs) until it ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from timestep.run_feed import FeedCursor, FeedEntry
from timestep.scope import Scope
from timestep.store.retry import retried
from timestep.store.rows import event_from_row

FEED_BATCH_SIZE = 200

# The horizon: the oldest transaction running at this statement's snapshot, but those that
# pg_stat_activity shows in another database (a transaction id is of one database for good, so
# whenever the two were sampled, leaving those out is safe), else the next transaction id.
# pg_stat_activity has 32-bit ids; the snapshot's are 64-bit (epoch and id).
_HORIZON = """
    snapshot AS (SELECT pg_current_snapshot() AS s),
    elsewhere AS (
        SELECT backend_xid::text::bigint AS xid FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
    ),
    horizon AS (
        SELECT coalesce(
            (SELECT min(running) FROM snapshot, pg_snapshot_xip(snapshot.s) AS running
             WHERE running::text::bigint % 4294967296 NOT IN (SELECT xid FROM elsewhere)),
            (SELECT pg_snapshot_xmax(s) FROM snapshot)
        ) AS horizon
    )
"""


@dataclass(frozen=True)
class FeedBatch:
    changes: list[FeedEntry]
    # Entries after these exist but wait for an older transaction to finish.
    held_back: bool


class RunFeed:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @retried
    async def head(self) -> FeedCursor:
        """A cursor before every entry that is not readable yet (the current position)."""
        horizon = await self._pool.fetchval(f"WITH {_HORIZON} SELECT horizon::text::bigint FROM horizon")
        return FeedCursor(int(horizon))

    @retried
    async def after(self, scope: Scope, cursor: FeedCursor, limit: int = FEED_BATCH_SIZE) -> FeedBatch:
        """The scope's entries after `cursor`, oldest first, up to the first one not readable yet."""
        rows = await self._pool.fetch(
            f"""
            WITH {_HORIZON}
            SELECT f.txid::text::bigint AS feed_txid, f.txid >= horizon.horizon AS held, r.agent, e.*
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
        changes: list[FeedEntry] = []
        for row in rows:
            if row["held"]:
                return FeedBatch(changes, held_back=True)
            position = FeedCursor(row["feed_txid"], row["run_id"], row["sequence"])
            changes.append(FeedEntry(position, row["agent"], event_from_row(row)))
        return FeedBatch(changes, held_back=False)
