"""Deleting runs and sessions from the service's tables: a run's row with every row that
references it (events, interruptions, snapshots, usage, model calls, the step journal, tool
markers and recovery claims go with it: `ON DELETE CASCADE`), and the session items it added.

Only runs that are not executing are deleted: each delete locks the rows it removes and
re-checks their status, so a run that became QUEUED or RUNNING meanwhile is refused, never
removed from under its segment. The durable engine's own records of a run are its to delete
(`SegmentLauncher.forget`), before these rows go."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from timestep.domain import Deletion, RunStatus
from timestep.errors import FailedPreconditionError
from timestep.scope import Scope
from timestep.store.retry import retried
from timestep.store.rows import Connection, run_not_found
from timestep.store.session_store import SessionStore, session_not_found
from timestep.store.session_turns import remove_items_of

_EXECUTING = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
_FINISHED = [RunStatus.COMPLETED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value]


@dataclass(frozen=True)
class RunRecord:
    """What deleting a run needs to know of it: which workflows it had, and whether it runs."""

    id: str
    segment_count: int
    status: RunStatus
    tenant: str = ""
    session_id: str = ""


def run_active(run_id: str, status: str) -> FailedPreconditionError:
    return FailedPreconditionError(
        f"Run {run_id} is {status.upper()}; cancel it first (CancelRun), or delete it with force, "
        "which cancels it.",
        reason="RUN_ACTIVE",
    )


def session_active(session_id: str, run_id: str) -> FailedPreconditionError:
    return FailedPreconditionError(
        f"Session {session_id!r} has a QUEUED or RUNNING run ({run_id}); cancel it first, or "
        "delete the session with force, which cancels its runs.",
        reason="SESSION_ACTIVE",
        subject=f"sessions/{session_id}",
        metadata={"run_id": run_id},
    )


class DeletionStore:
    def __init__(self, pool: asyncpg.Pool, sessions: SessionStore) -> None:
        self._pool = pool
        self._sessions = sessions

    @retried
    async def runs_of_session(self, scope: Scope, session_id: str) -> list[RunRecord]:
        rows = await self._pool.fetch(
            """SELECT id, segment_count, status FROM runs
               WHERE session_id = $1 AND ($2::text IS NULL OR tenant = $2)
               ORDER BY coalesce(session_seq, 0), create_time""",
            session_id,
            scope.only,
        )
        return [RunRecord(row["id"], row["segment_count"], RunStatus(row["status"])) for row in rows]

    @retried
    async def find_run(self, scope: Scope, run_id: str) -> RunRecord | None:
        row = await self._pool.fetchrow(
            """SELECT id, segment_count, status, tenant, session_id FROM runs
               WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)""",
            run_id,
            scope.only,
        )
        if row is None:
            return None
        return RunRecord(
            row["id"], row["segment_count"], RunStatus(row["status"]), row["tenant"], row["session_id"]
        )

    async def delete_run(self, scope: Scope, run_id: str) -> Deletion:
        """Delete a run that is not QUEUED or RUNNING, with the session items it added."""
        async with self._pool.acquire() as connection, connection.transaction():
            status = await connection.fetchval(
                "SELECT status FROM runs WHERE id = $1 AND ($2::text IS NULL OR tenant = $2) FOR UPDATE",
                run_id,
                scope.only,
            )
            if status is None:
                raise run_not_found(run_id)
            if status in _EXECUTING:
                raise run_active(run_id, status)
            return await _delete_runs(connection, [run_id])

    async def delete_session(self, scope: Scope, session_id: str, run_ids: Sequence[str]) -> Deletion:
        """Delete the session's items and the runs `run_ids` of it (none of them may be QUEUED or
        RUNNING); NOT_FOUND when there was no such session."""
        async with self._pool.acquire() as connection, connection.transaction():
            if await self._sessions.find_session(connection, scope, session_id) is None:
                raise session_not_found(session_id)
            # Every run of the session, locked: none may start while its history goes.
            rows = await connection.fetch(
                """SELECT id, status FROM runs WHERE tenant = $1 AND session_id = $2
                   ORDER BY id FOR UPDATE""",
                scope.only,
                session_id,
            )
            for row in rows:
                if row["status"] in _EXECUTING:
                    raise session_active(session_id, row["id"])
            deleted = await _delete_runs(connection, run_ids)
            items = await self._sessions.delete_history(connection, scope, session_id)
            return deleted + Deletion(session_items=items)

    @retried
    async def expired_runs(self, older_than: timedelta, limit: int) -> list[RunRecord]:
        """Up to `limit` finished runs, not kept, unchanged for longer than `older_than`, oldest first."""
        rows = await self._pool.fetch(
            """SELECT id, segment_count, status FROM runs
               WHERE status = ANY($1::text[]) AND NOT keep AND update_time < clock_timestamp() - $2::interval
               ORDER BY update_time, id LIMIT $3""",
            _FINISHED,
            older_than,
            limit,
        )
        return [RunRecord(row["id"], row["segment_count"], RunStatus(row["status"])) for row in rows]

    @retried
    async def delete_expired(self, run_ids: Sequence[str], older_than: timedelta) -> Deletion:
        """Delete those of `run_ids` that are still expired (finished, not kept, unchanged for
        longer than `older_than`); another replica deleting some of them too is harmless."""
        async with self._pool.acquire() as connection, connection.transaction():
            still = await connection.fetch(
                """SELECT id FROM runs
                   WHERE id = ANY($1::text[]) AND status = ANY($2::text[]) AND NOT keep
                     AND update_time < clock_timestamp() - $3::interval
                   ORDER BY id FOR UPDATE SKIP LOCKED""",
                list(run_ids),
                _FINISHED,
                older_than,
            )
            return await _delete_runs(connection, [row["id"] for row in still])

    async def record_sweep(self, deleted: Deletion) -> None:
        """Add a retention sweep's deletions to the totals the metrics report."""
        await self._pool.execute(
            """UPDATE retention_totals SET runs = runs + $1, session_items = session_items + $2,
                      last_sweep_time = clock_timestamp()""",
            deleted.runs,
            deleted.session_items,
        )

    @retried
    async def set_keep(self, scope: Scope, run_id: str, keep: bool) -> None:
        updated = await self._pool.fetchval(
            """UPDATE runs SET keep = $3 WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)
               RETURNING id""",
            run_id,
            scope.only,
            keep,
        )
        if updated is None:
            raise run_not_found(run_id)


async def _delete_runs(connection: Connection, run_ids: Sequence[str]) -> Deletion:
    """Delete runs (locked by the caller) and the session items they added."""
    items = await remove_items_of(connection, list(run_ids))
    runs = await connection.fetchval(
        "WITH d AS (DELETE FROM runs WHERE id = ANY($1::text[]) RETURNING 1) SELECT count(*) FROM d",
        list(run_ids),
    )
    return Deletion(runs=int(runs), session_items=items)
