"""The run store: runs, their interruptions, snapshots and usage in PostgreSQL.

A run's transitions are decided in `timestep.runs` (`timestep.runs.transitions`, applied by
`timestep.runs.apply`) and written here by `apply` in one statement
(`timestep.store.changes`): a compare-and-set on the run's version that also stores the rows
decided with it and appends its events, so a reader never sees a status without its event.
Creating and importing a run insert it with its first events in one transaction. Event
sequences come from `runs.last_sequence`, bumped under the run's row lock: per run, strictly
increasing, without gaps.

About 480 lines: the run queries (get, list, page) and the inserts of new and imported runs with
their admission to a session share the row mapping and the per-tenant locking here; splitting
them would spread one table's SQL over two modules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from timestep.changes import Admission, Admit, RunChange, status_changed
from timestep.domain import (
    Interruption,
    InterruptionStatus,
    NewInterruption,
    NewRun,
    Page,
    Run,
    RunFilter,
    RunStatus,
    Snapshot,
)
from timestep.errors import AlreadyExistsError
from timestep.event_types import InterruptionDecided, InterruptionRaised, RunEvent, StatusChanged, pending
from timestep.scope import Scope
from timestep.store.changes import apply_change, too_many_active_runs
from timestep.store.events import EVENTS_CHANNEL, EventStore
from timestep.store.feed import RunFeed
from timestep.store.interruptions import insert_interruptions
from timestep.store.pages import clamp_page_size, decode_page_token, encode_page_token
from timestep.store.retry import retried, retrying
from timestep.store.rows import (
    RUN_COLUMNS,
    RUN_INTERRUPTIONS,
    Connection,
    interruption_from_row,
    interruptions_from_json,
    new_id,
    run_from_row,
    run_not_found,
)
from timestep.store.session_turns import (
    MAY_START,
    Turn,
    active_runs,
    lock_session,
    next_turn,
    runs_ahead,
    supersede,
)

_BY_ID = "r.id = $1 AND ($2::text IS NULL OR r.tenant = $2)"


def _fingerprint(new_run: NewRun) -> str:
    canonical = json.dumps(new_run.fingerprint_fields(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _encode_page_token(scope: str, after: tuple[datetime, str]) -> str:
    return encode_page_token(scope, [after[0].isoformat(), after[1]])


def _decode_page_token(token: str, scope: str) -> tuple[datetime, str] | None:
    return decode_page_token(token, scope, lambda after: (_utc(datetime.fromisoformat(after[0])), after[1]))


def _utc(stamp: datetime) -> datetime:
    """A token's time as the service wrote it: in UTC (astimezone overflows for year 1 with a
    later offset, which only a forged token holds)."""
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


class RunStore:
    def __init__(self, pool: asyncpg.Pool, origin: str = "", *, max_active_runs: int = 0) -> None:
        self._pool = pool
        # The most runs a tenant may have QUEUED or RUNNING at once (0: no limit).
        self._max_active_runs = max_active_runs
        # Where the transitions' events go (`origin` names this process in their notifications).
        self.events = EventStore(pool, origin)
        # The tenant-wide feed of run changes the events feed (WatchRuns).
        self.feed = RunFeed(pool)

    # ----- reads -------------------------------------------------------------------------

    async def get_run(self, scope: Scope, run_id: str) -> Run:
        async with self._pool.acquire() as connection:
            return await self._get_run(connection, scope, run_id)

    async def _get_run(self, connection: Connection, scope: Scope, run_id: str) -> Run:
        row = await connection.fetchrow(
            f"SELECT {RUN_COLUMNS}, {RUN_INTERRUPTIONS} FROM runs r WHERE {_BY_ID}", run_id, scope.only
        )
        if row is None:
            raise run_not_found(run_id)
        return run_from_row(row, interruptions_from_json(row["interruption_rows"]))

    async def list_runs(
        self, scope: Scope, run_filter: RunFilter, page_size: int, page_token: str
    ) -> Page[Run]:
        size = clamp_page_size(page_size)
        token_scope = hashlib.sha256(repr((scope, run_filter)).encode()).hexdigest()[:16]
        after = _decode_page_token(page_token, token_scope)
        conditions: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("agent", run_filter.agent),
            ("session_id", run_filter.session_id),
            ("status", run_filter.status.value if run_filter.status else ""),
        ):
            if value:
                args.append(value)
                conditions.append(f"{column} = ${len(args)}")
        if scope.only is not None:
            args.append(scope.only)
            conditions.append(f"tenant = ${len(args)}")
        if after:
            args.extend(after)
            conditions.append(f"(create_time, id) < (${len(args) - 1}, ${len(args)})")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        args.append(size + 1)
        rows = await self._pool.fetch(
            f"""SELECT {RUN_COLUMNS}, {RUN_INTERRUPTIONS} FROM runs r {where}
                ORDER BY create_time DESC, id DESC LIMIT ${len(args)}""",
            *args,
        )
        runs = [run_from_row(row, interruptions_from_json(row["interruption_rows"])) for row in rows[:size]]
        token = (
            _encode_page_token(token_scope, (runs[-1].create_time, runs[-1].id)) if len(rows) > size else ""
        )
        return Page(runs, token)

    @retried
    async def segment_start(self, run_id: str, segment: int) -> tuple[Run, str | list[Any] | Snapshot | None]:
        """The run and what segment `segment` starts from, in one query: the run's input for
        the first segment, the latest snapshot for later ones (None if there is none)."""
        row = await self._pool.fetchrow(
            f"""SELECT {RUN_COLUMNS}, {RUN_INTERRUPTIONS},
                       CASE WHEN $2 = 1 THEN r.input END AS input, s.writer, s.schema_version, s.state_json
                FROM runs r LEFT JOIN LATERAL (
                    SELECT writer, schema_version, state_json FROM run_state_snapshots
                    WHERE run_id = r.id AND $2 > 1 ORDER BY segment DESC LIMIT 1) s ON true
                WHERE r.id = $1""",
            run_id,
            segment,
        )
        if row is None:
            raise run_not_found(run_id)
        run = run_from_row(row, interruptions_from_json(row["interruption_rows"]))
        if segment == 1:
            return run, row["input"]
        snapshot = (
            Snapshot(row["writer"], row["schema_version"], row["state_json"]) if row["writer"] else None
        )
        return run, snapshot

    async def list_interruptions(
        self, scope: Scope, run_id: str, page_size: int, page_token: str
    ) -> Page[Interruption]:
        """One run's interruptions (`run_id`), or every PENDING interruption of every INTERRUPTED
        run (empty `run_id`); oldest first, a page at a time."""
        size = clamp_page_size(page_size)
        token_scope = f"run:{run_id}" if run_id else "pending"
        after = _decode_page_token(page_token, token_scope)
        if run_id:
            if await self._pool.fetchval(f"SELECT 1 FROM runs r WHERE {_BY_ID}", run_id, scope.only) is None:
                raise run_not_found(run_id)
            which, arguments = "i.run_id = $5", [run_id]
        else:
            which = "i.status = 'pending' AND r.status = 'interrupted' AND i.segment = r.segment_count"
            arguments = []
        rows = await self._pool.fetch(
            f"""SELECT i.* FROM interruptions i JOIN runs r ON r.id = i.run_id
               WHERE {which}
                 AND ($1::timestamptz IS NULL OR (i.create_time, i.id) > ($1, $2))
                 AND ($4::text IS NULL OR r.tenant = $4)
               ORDER BY i.create_time, i.id LIMIT $3""",
            after[0] if after else None,
            after[1] if after else "",
            size + 1,
            scope.only,
            *arguments,
        )
        items = [interruption_from_row(row) for row in rows[:size]]
        token = (
            _encode_page_token(token_scope, (items[-1].create_time, items[-1].id)) if len(rows) > size else ""
        )
        return Page(items, token)

    async def latest_snapshot(self, run_id: str) -> Snapshot | None:
        row = await self._pool.fetchrow(
            """SELECT writer, schema_version, state_json FROM run_state_snapshots
               WHERE run_id = $1 ORDER BY segment DESC LIMIT 1""",
            run_id,
        )
        return Snapshot(row["writer"], row["schema_version"], row["state_json"]) if row else None

    async def queued_segments(self) -> list[tuple[str, int, str]]:
        """(run id, segment, queue) of every QUEUED run whose turn it is in its session."""
        rows = await self._pool.fetch(
            f"SELECT id, segment_count, queue_name FROM runs r WHERE status = 'queued' AND {MAY_START}"
        )
        return [(row["id"], row["segment_count"], row["queue_name"]) for row in rows]

    @retried
    async def next_turn(self, tenant: str, session_id: str) -> Turn | None:
        """The QUEUED run of the session whose turn it is now, if any."""
        return await next_turn(self._pool, tenant, session_id) if session_id else None

    @retried
    async def run_ahead(self, run: Run) -> Run | None:
        """The first active run of `run`'s session ahead of it, if any."""
        if not run.session_id:
            return None
        async with self._pool.acquire() as connection:
            ahead = await runs_ahead(connection, run)
        return ahead[0] if ahead else None

    # ----- transitions -------------------------------------------------------------------

    async def create_run(
        self, new_run: NewRun, queue_name: str = "", *, run_id: str | None = None, admit: Admit | None = None
    ) -> tuple[Run, list[RunEvent], bool]:
        """Insert a run QUEUED for its first segment (or find the one its request_id already made).
        With a limit on active runs, a new run its tenant has no room for is refused. A run of a
        session is admitted as `admit` decides from the session's active runs, under the session's
        lock and in the insert's transaction: refused, or inserted with the reason it waits, after
        which the runs ahead it supersedes are cancelled and their items removed as decided.

        Returns the run, the events written (those of the runs it cancelled too) and whether it
        was created by this call (with `run_id` as its id, if given).
        """
        fingerprint = _fingerprint(new_run)
        run_id = run_id or new_id("run")
        admitted = admit if new_run.session_id else None
        async with self._pool.acquire() as connection:
            if not self._max_active_runs and admitted is None:
                created = await self._insert_run(connection, new_run, fingerprint, queue_name, run_id)
            else:
                # Locks in one order everywhere: the session's, the rows of its runs (cancelled
                # here, or changed by their own transitions), then the tenant's (taken last by
                # every transition that adds an active run).
                async with connection.transaction():
                    admission, cancelled = Admission(), []
                    if admitted is not None:
                        await lock_session(connection, new_run.tenant, new_run.session_id)
                        if await self._request_used(connection, new_run):
                            existing = await self._existing_for_request(connection, new_run, fingerprint)
                            return existing, [], False
                        ahead = await active_runs(connection, new_run.tenant, new_run.session_id)
                        admission = admitted(run_id, ahead)
                        cancelled = await supersede(
                            connection, new_run, run_id, admission, admitted, origin=self.events.origin
                        )
                    await self._lock_tenant(connection, new_run.tenant)
                    created = await self._insert_run(
                        connection, new_run, fingerprint, queue_name, run_id, admission.queued_reason
                    )
                    if created is None:  # raises, rolling back what it superseded, if anything
                        return await self._existing_for_request(connection, new_run, fingerprint), [], False
                    await self._check_active_runs(connection, new_run.tenant)
                    created = (created[0], [*cancelled, *created[1]])
            if created is None:
                return await self._existing_for_request(connection, new_run, fingerprint), [], False
            return created[0], created[1], True

    async def _request_used(self, connection: Connection, new_run: NewRun) -> bool:
        return bool(new_run.request_id) and bool(
            await connection.fetchval(
                "SELECT 1 FROM runs WHERE tenant = $1 AND request_id = $2", new_run.tenant, new_run.request_id
            )
        )

    async def _insert_run(
        self,
        connection: Connection,
        new_run: NewRun,
        fingerprint: str,
        queue_name: str,
        run_id: str,
        reason: str = "",
    ) -> tuple[Run, list[RunEvent]] | None:
        """Insert the run with its first event (sequence 1: no other appender can know the run
        yet) and notify, in one statement; None when its request_id was used already."""
        queued_event = StatusChanged(RunStatus.QUEUED, reason)
        queued = pending(queued_event)
        row = await connection.fetchrow(
            f"""WITH inserted AS (
                    INSERT INTO runs AS r (id, agent, current_agent, status, session_id, model, input,
                                           metadata, request_id, request_fingerprint, segment_count,
                                           queue_name, tenant, segment_deadline, last_sequence,
                                           approval_timeout, auto_resume_on_expiry, approval_expiry_message,
                                           keep)
                    VALUES ($1, $2, $2, 'queued', $3, $4, $5, $6, NULLIF($7, ''), $8, 1, $9, $10, $11, 1,
                            $16, $17, $18, $19)
                    ON CONFLICT (tenant, request_id) DO NOTHING RETURNING {RUN_COLUMNS}),
                event AS (
                    INSERT INTO run_events (run_id, sequence, segment, kind, payload)
                    SELECT id, 1, 1, $12, $13 FROM inserted RETURNING create_time AS event_time),
                notified AS (SELECT pg_notify($14, $15 || id || ':1') AS sent FROM inserted)
                SELECT * FROM inserted, event, notified""",
            run_id,
            new_run.agent,
            new_run.session_id,
            new_run.model,
            new_run.input,
            new_run.metadata,
            new_run.request_id,
            fingerprint,
            queue_name,
            new_run.tenant,
            new_run.deadline,
            queued.kind.value,
            queued.payload,
            EVENTS_CHANNEL,
            f"{self.events.origin}:",
            new_run.approval.timeout,
            new_run.approval.auto_resume,
            new_run.approval.expiry_message,
            new_run.keep,
        )
        if row is None:
            return None
        event = RunEvent(row["id"], 1, 1, queued_event, row["event_time"])
        return run_from_row(row, []), [event]

    async def _existing_for_request(self, connection: Connection, new_run: NewRun, fingerprint: str) -> Run:
        request_id = new_run.request_id
        row = await connection.fetchrow(
            "SELECT id, request_fingerprint FROM runs WHERE tenant = $1 AND request_id = $2",
            new_run.tenant,
            request_id,
        )
        assert row is not None, "ON CONFLICT without a conflicting row"
        if row["request_fingerprint"] != fingerprint:
            raise AlreadyExistsError(
                f"request_id {request_id!r} was already used for run {row['id']} with different "
                "arguments. Use a new request_id for a new run, or repeat the original arguments "
                "to get the same run back.",
                reason="REQUEST_ID_REUSED",
            )
        return await self._get_run(connection, Scope.ALL, row["id"])

    async def import_run(
        self,
        new_run: NewRun,
        snapshot: Snapshot,
        current_agent: str,
        interruptions: Sequence[NewInterruption],
    ) -> tuple[Run, list[RunEvent]]:
        """Insert an INTERRUPTED run whose first segment's snapshot came from outside (stored as
        given; its writer and schema version are also named in the status event)."""
        async with self._pool.acquire() as connection, connection.transaction():
            run_id = new_id("run")
            await connection.execute(
                """INSERT INTO runs (id, agent, current_agent, status, session_id, model, input, metadata,
                                     segment_count, tenant, approval_timeout, auto_resume_on_expiry,
                                     approval_expiry_message)
                   VALUES ($1, $2, $3, 'interrupted', $4, $5, $6, $7, 1, $8, $9, $10, $11)""",
                run_id,
                new_run.agent,
                current_agent,
                new_run.session_id,
                new_run.model,
                new_run.input,
                new_run.metadata,
                new_run.tenant,
                new_run.approval.timeout,
                new_run.approval.auto_resume,
                new_run.approval.expiry_message,
            )
            await self._insert_snapshot(connection, run_id, 1, snapshot)
            inserted = await insert_interruptions(connection, run_id, 1, interruptions)
            events = await self.events.append_in(
                connection,
                run_id,
                1,
                [
                    *(pending(InterruptionRaised(i)) for i in inserted),
                    *(
                        pending(InterruptionDecided(i))
                        for i in inserted
                        if i.status is not InterruptionStatus.PENDING
                    ),
                    status_changed(
                        RunStatus.INTERRUPTED,
                        f"imported from {snapshot.writer} RunState JSON (schema {snapshot.schema_version})",
                    ),
                ],
            )
            return await self._get_run(connection, Scope.ALL, run_id), events

    async def apply(self, change: RunChange, *, wait_out_database: bool = False) -> list[RunEvent] | None:
        """Write a decided transition in one statement: its events, or None when the run moved
        past the version it was decided from (nothing written).

        With `wait_out_database` (a segment's own transitions), a failed attempt is repeated
        while the database is away: a write whose reply was lost finds the run moved on, and
        deciding again on it tells the repeat apart (beginning again is kept, finishing again
        is refused as superseded, as for any outcome of a run that moved on)."""

        async def write() -> list[RunEvent] | None:
            return await apply_change(
                self._pool,
                change,
                notify_channel=EVENTS_CHANNEL,
                origin=self.events.origin,
                max_active_runs=self._max_active_runs,
            )

        if wait_out_database:
            return await retrying(write, what="apply", pool=self._pool)
        return await write()

    async def expiring(self, now: datetime) -> list[tuple[str, str]]:
        """(run id, interruption id) of each pending interruption of an INTERRUPTED run whose
        expire time has passed at `now`."""
        rows = await self._pool.fetch(
            """SELECT i.run_id, i.id FROM interruptions i JOIN runs r ON r.id = i.run_id
               WHERE i.status = 'pending' AND i.expire_time <= $1
                 AND r.status = 'interrupted' AND i.segment = r.segment_count
               ORDER BY i.expire_time, i.id""",
            now,
        )
        return [(row["run_id"], row["id"]) for row in rows]

    async def resumable_on_expiry(self) -> list[str]:
        """The INTERRUPTED runs that resume on expiry whose interruptions are all decided, one
        of them by expiry (`timestep.runs.transitions.resume_on_expiry`)."""
        rows = await self._pool.fetch(
            """SELECT r.id FROM runs r
               WHERE r.status = 'interrupted' AND r.auto_resume_on_expiry
                 AND EXISTS (SELECT 1 FROM interruptions i
                             WHERE i.run_id = r.id AND i.segment = r.segment_count AND i.expired)
                 AND NOT EXISTS (SELECT 1 FROM interruptions i
                                 WHERE i.run_id = r.id AND i.segment = r.segment_count
                                   AND i.status = 'pending')"""
        )
        return [row["id"] for row in rows]

    # ----- helpers -----------------------------------------------------------------------

    async def _lock_tenant(self, connection: Connection, tenant: str) -> None:
        """With a limit on active runs, one transaction at a time may add to a tenant's (so that
        concurrent calls cannot overshoot it); held until commit."""
        if self._max_active_runs:
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('timestep.tenant:' || $1, 0))", tenant
            )

    async def _check_active_runs(self, connection: Connection, tenant: str) -> None:
        """Refuse (rolling the transaction back) when the tenant now has more runs QUEUED or
        RUNNING than the limit, counting the one this transaction adds."""
        limit = self._max_active_runs
        if not limit:
            return
        active = await connection.fetchval(
            "SELECT count(*) FROM runs WHERE tenant = $1 AND status IN ('queued', 'running')", tenant
        )
        if active > limit:
            raise too_many_active_runs(limit)

    async def _insert_snapshot(
        self, connection: Connection, run_id: str, segment: int, snapshot: Snapshot
    ) -> None:
        await connection.execute(
            """INSERT INTO run_state_snapshots (run_id, segment, writer, schema_version, state_json)
               VALUES ($1, $2, $3, $4, $5)""",
            run_id,
            segment,
            snapshot.writer,
            snapshot.schema_version,
            snapshot.state_json,
        )
