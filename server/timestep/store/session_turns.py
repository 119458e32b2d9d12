"""Whose turn it is in a session: its runs take turns in the order they arrived (`session_seq`,
assigned under the session's lock when a run is inserted; see migration 0031). A run whose
session has an active run (QUEUED, RUNNING or INTERRUPTED) ahead of it waits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import asyncpg

from timestep.changes import Admission, Admit
from timestep.domain import NewRun, Run
from timestep.event_types import RunEvent
from timestep.store.changes import apply_change
from timestep.store.events import EVENTS_CHANNEL
from timestep.store.rows import (
    RUN_COLUMNS,
    RUN_INTERRUPTIONS,
    Connection,
    interruptions_from_json,
    run_from_row,
)

# The runs of `r`'s session that are ahead of it and active (a run from before session turns,
# without a number, is ahead of every run that has one). Used as `{AHEAD_OF.format(run="r")}`.
AHEAD_OF: Final = """
    SELECT 1 FROM runs o
    WHERE o.tenant = {run}.tenant AND o.session_id = {run}.session_id AND o.id <> {run}.id
      AND o.status IN ('queued', 'running', 'interrupted')
      AND coalesce(o.session_seq, 0) < coalesce({run}.session_seq, 0)"""
# A QUEUED run that may start: no run of its session is ahead of it.
MAY_START: Final = f"(r.session_id = '' OR NOT EXISTS ({AHEAD_OF.format(run='r')}))"


# How often a new run's cancels of the runs ahead of it are decided again after losing a race.
SUPERSEDE_ATTEMPTS = 20


@dataclass(frozen=True)
class Turn:
    """A QUEUED run whose turn it is: its segment to launch, on its queue."""

    run_id: str
    segment: int
    queue_name: str


async def runs_ahead(connection: Connection, run: Run) -> list[Run]:
    """The active runs of `run`'s session ahead of it, in turn order."""
    rows = await connection.fetch(
        f"""SELECT {RUN_COLUMNS}, {RUN_INTERRUPTIONS} FROM runs r
            WHERE EXISTS (SELECT 1 FROM runs me WHERE me.id = $1
                          AND r.tenant = me.tenant AND r.session_id = me.session_id AND r.id <> me.id
                          AND coalesce(r.session_seq, 0) < coalesce(me.session_seq, 0))
              AND r.status IN ('queued', 'running', 'interrupted')
            ORDER BY coalesce(r.session_seq, 0), r.create_time""",
        run.id,
    )
    return [run_from_row(row, interruptions_from_json(row["interruption_rows"])) for row in rows]


async def lock_session(connection: Connection, tenant: str, session_id: str) -> None:
    """The session's lock (the one runs are inserted under), held until the transaction ends."""
    await connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('timestep.session:' || $1 || '/' || $2, 0))",
        tenant,
        session_id,
    )


async def active_runs(connection: Connection, tenant: str, session_id: str) -> list[Run]:
    """The session's QUEUED, RUNNING and INTERRUPTED runs, in turn order."""
    rows = await connection.fetch(
        f"""SELECT {RUN_COLUMNS}, {RUN_INTERRUPTIONS} FROM runs r
            WHERE r.tenant = $1 AND r.session_id = $2 AND r.status IN ('queued', 'running', 'interrupted')
            ORDER BY coalesce(r.session_seq, 0), r.create_time""",
        tenant,
        session_id,
    )
    return [run_from_row(row, interruptions_from_json(row["interruption_rows"])) for row in rows]


async def next_turn(pool: asyncpg.Pool, tenant: str, session_id: str) -> Turn | None:
    """The session's first active run, if it is QUEUED (its turn has come); None otherwise."""
    row = await pool.fetchrow(
        """SELECT id, segment_count, queue_name, status FROM runs
           WHERE tenant = $1 AND session_id = $2 AND status IN ('queued', 'running', 'interrupted')
           ORDER BY coalesce(session_seq, 0), create_time LIMIT 1""",
        tenant,
        session_id,
    )
    if row is None or row["status"] != "queued":
        return None
    return Turn(row["id"], row["segment_count"], row["queue_name"])


async def remove_items_of(connection: Connection, run_ids: list[str]) -> int:
    """Remove the session items these runs added (a rollback); how many there were."""
    removed = await connection.fetchval(
        """WITH d AS (DELETE FROM session_items WHERE run_id = ANY($1::text[]) RETURNING 1)
           SELECT count(*) FROM d""",
        run_ids,
    )
    return int(removed)


async def supersede(
    connection: Connection, new_run: NewRun, run_id: str, admission: Admission, admit: Admit, *, origin: str
) -> list[RunEvent]:
    """Apply `admission`'s cancels of the runs ahead of new run `run_id` in the caller's
    transaction (deciding again on a fresh read of the session when one lost a race: a run ahead
    changed meanwhile), then remove the items decided; the cancelled runs' events."""
    events: list[RunEvent] = []
    removed: list[str] = []
    for _ in range(SUPERSEDE_ATTEMPTS):
        lost = False
        for change in admission.cancel:
            written = await apply_change(
                connection, change, notify_channel=EVENTS_CHANNEL, origin=origin, max_active_runs=0
            )
            if written is None:  # the run changed: it may have finished, keeping its items
                lost = True
                continue
            events += written
            if change.run.id in admission.remove_items_of:
                removed.append(change.run.id)
        if not lost:
            break
        admission = admit(run_id, await active_runs(connection, new_run.tenant, new_run.session_id))
    if removed:
        await remove_items_of(connection, removed)
    return events
