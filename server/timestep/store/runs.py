"""The run store: runs, their interruptions, snapshots and usage in PostgreSQL, and every
transition of a run (its events are written through the event store, `timestep.store.events`).

Every method that changes several rows does so in one transaction, and every status change
appends its `status_changed` event in that same transaction, so a reader never sees a
status without its event. Event sequences come from `runs.last_sequence`, bumped under the
run's row lock: per run, strictly increasing, without gaps.

Which transitions apply, and to what status, is decided by `timestep.runs.transitions` (pure
functions of the run read under its row lock); this module writes what they decide. The
transitions stay in this one module (over the usual size) because each is one transaction
under the run's row lock, sharing the locked read of the run and the status change; what they
write of interruptions is in `timestep.store.interruptions`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from timestep.domain import (
    Interruption,
    InterruptionStatus,
    ModelCall,
    MultitaskStrategy,
    NewInterruption,
    NewRun,
    Page,
    PendingEvent,
    Run,
    RunError,
    RunErrorCode,
    RunFilter,
    RunStatus,
    Snapshot,
    Usage,
)
from timestep.errors import AlreadyExistsError, ResourceExhaustedError
from timestep.event_types import (
    InterruptionDecided,
    InterruptionRaised,
    RunEvent,
    RunFailed,
    UsageReported,
    pending,
)
from timestep.runs import transitions
from timestep.runs.transitions import Change, Keep, Refusal, status_changed
from timestep.scope import Scope
from timestep.store.events import EventStore
from timestep.store.interruptions import insert_interruptions, record_decision
from timestep.store.pages import clamp_page_size, decode_page_token, encode_page_token
from timestep.store.retry import retried
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
from timestep.store.session_turns import MAY_START, Turn, next_turn, remove_items_of, runs_ahead
from timestep.store.usage import record_segment_usage

_BY_ID = "r.id = $1 AND ($2::text IS NULL OR r.tenant = $2)"


@dataclass(frozen=True)
class SegmentOutcome:
    """How a segment ended; written by `RunStore.finish_segment` in one transaction."""

    status: RunStatus
    current_agent: str
    usage: Usage
    final_output: str = ""
    error: RunError | None = None
    snapshot: Snapshot | None = None
    interruptions: Sequence[NewInterruption] = ()
    # Events that belong before the status change (final output, error...).
    events: Sequence[PendingEvent] = ()
    # The segment's model calls, in order (their usage sums to `usage`).
    model_calls: Sequence[ModelCall] = ()


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


# How soon a caller refused for its number of active runs should try again.
ACTIVE_RUNS_RETRY_S = 1.0


class RunStore:
    def __init__(self, pool: asyncpg.Pool, origin: str = "", *, max_active_runs: int = 0) -> None:
        self._pool = pool
        # The most runs a tenant may have QUEUED or RUNNING at once (0: no limit).
        self._max_active_runs = max_active_runs
        # Where the transitions' events go (`origin` names this process in their notifications).
        self.events = EventStore(pool, origin)

    # ----- reads -------------------------------------------------------------------------

    async def get_run(self, scope: Scope, run_id: str) -> Run:
        async with self._pool.acquire() as connection:
            return await self._get_run(connection, scope, run_id)

    async def _get_run(self, connection: Connection, scope: Scope, run_id: str, *, lock: bool = False) -> Run:
        if not lock:
            row = await connection.fetchrow(
                f"SELECT {RUN_COLUMNS}, {RUN_INTERRUPTIONS} FROM runs r WHERE {_BY_ID}", run_id, scope.only
            )
            if row is None:
                raise run_not_found(run_id)
            return run_from_row(row, interruptions_from_json(row["interruption_rows"]))
        # Locked, the interruptions are read after the lock is granted, by a statement of their
        # own: one taken before the lock could miss a decision the previous holder committed.
        row = await connection.fetchrow(
            f"SELECT {RUN_COLUMNS} FROM runs r WHERE {_BY_ID} FOR UPDATE", run_id, scope.only
        )
        if row is None:
            raise run_not_found(run_id)
        return run_from_row(
            row,
            await connection.fetch(
                "SELECT * FROM interruptions WHERE run_id = $1 ORDER BY segment, create_time, id", run_id
            ),
        )

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
    async def get_run_input(self, run_id: str) -> str | list[Any]:
        value = await self._pool.fetchval("SELECT input FROM runs WHERE id = $1", run_id)
        if value is None:
            raise run_not_found(run_id)
        return value  # type: ignore[no-any-return]

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

    # ----- transitions -------------------------------------------------------------------

    async def fail_stranded(
        self, run_id: str, segment: int, error: RunError
    ) -> tuple[Run, list[RunEvent]] | None:
        """FAIL a run still QUEUED or RUNNING `segment` whose recoveries kept failing; None if it
        moved on meanwhile."""
        async with self._pool.acquire() as connection, connection.transaction():
            run = await self._get_run(connection, Scope.ALL, run_id, lock=True)
            change = transitions.fail_stranded(run, segment, error.message)
            if isinstance(change, Refusal):
                return None
            events = await self._end(
                connection,
                run,
                change,
                error,
                [pending(RunFailed(error))],
            )
            return await self._get_run(connection, Scope.ALL, run_id), events

    async def create_run(
        self,
        new_run: NewRun,
        queue_name: str = "",
        strategy: MultitaskStrategy = MultitaskStrategy.ENQUEUE,
    ) -> tuple[Run, list[RunEvent], bool]:
        """Insert a run QUEUED for its first segment (or find the one its request_id already made).
        With a limit on active runs, a new run its tenant has no room for is refused. A new run
        of a busy session is admitted as `strategy` says (`transitions.admit`): refused, left to
        wait its turn, or the runs ahead of it cancelled (and, rolling back, their items removed)
        in the same transaction.

        Returns the run, the events written (the cancelled runs' too) and whether it was created
        by this call.
        """
        fingerprint = _fingerprint(new_run)
        async with self._pool.acquire() as connection, connection.transaction():
            await self._lock_tenant(connection, new_run.tenant)
            run_id = await connection.fetchval(
                """INSERT INTO runs (id, agent, current_agent, status, session_id, model, input,
                                     metadata, request_id, request_fingerprint, segment_count, queue_name,
                                     tenant, segment_deadline, keep)
                   VALUES ($1, $2, $2, 'queued', $3, $4, $5, $6, NULLIF($7, ''), $8, 1, $9, $10, $11, $12)
                   ON CONFLICT (tenant, request_id) DO NOTHING RETURNING id""",
                new_id("run"),
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
                new_run.keep,
            )
            if run_id is None:
                return (
                    await self._existing_for_request(connection, new_run, fingerprint),
                    [],
                    False,
                )
            await self._check_active_runs(connection, new_run.tenant)
            run = await self._get_run(connection, Scope.ALL, run_id)
            admission = transitions.admit(
                run, await runs_ahead(connection, run) if run.session_id else [], strategy
            )
            if isinstance(admission, Refusal):
                raise admission.error()
            events = []
            for ahead, planned in admission.cancel:
                events += await self._supersede(connection, ahead.id, planned.reason)
            if admission.rollback:
                await remove_items_of(connection, [ahead.id for ahead, _ in admission.cancel])
            events += await self.events.append_in(connection, run_id, 1, [admission.event])
            return await self._get_run(connection, Scope.ALL, run_id), events, True

    async def _supersede(self, connection: Connection, run_id: str, reason: str) -> list[RunEvent]:
        """Cancel a run ahead of a new run of its session (INTERRUPT, ROLLBACK); one that
        finished meanwhile is left as it is."""
        run = await self._get_run(connection, Scope.ALL, run_id, lock=True)
        change = transitions.cancel(run, reason)
        if isinstance(change, Refusal):
            return []
        return await self._end(connection, run, change, RunError(RunErrorCode.CANCELLED, reason))

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
                                     segment_count, tenant)
                   VALUES ($1, $2, $3, 'interrupted', $4, $5, $6, $7, 1, $8)""",
                run_id,
                new_run.agent,
                current_agent,
                new_run.session_id,
                new_run.model,
                new_run.input,
                new_run.metadata,
                new_run.tenant,
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

    async def queue_resume(
        self, scope: Scope, run_id: str, queue_name: str = "", *, deadline: datetime | None = None
    ) -> tuple[Run, list[RunEvent]]:
        """Queue the next segment of an INTERRUPTED run whose interruptions are all decided
        (to stop at `deadline`, if given)."""
        async with self._pool.acquire() as connection, connection.transaction():
            run = await self._get_run(connection, scope, run_id, lock=True)
            change = transitions.resume(run)
            if isinstance(change, Refusal):
                raise change.error()
            await connection.execute(
                """UPDATE runs
                   SET status = $2, segment_count = $3, queue_name = $4, segment_deadline = $5
                   WHERE id = $1""",
                run_id,
                change.status.value,
                change.segment,
                queue_name,
                deadline,
            )
            await self._lock_tenant(connection, run.tenant)
            await self._check_active_runs(connection, run.tenant)
            events = await self.events.append_in(connection, run_id, change.segment, [change.event])
            return await self._get_run(connection, Scope.ALL, run_id), events

    @retried
    async def begin_segment(self, run_id: str, segment: int) -> tuple[Run | None, list[RunEvent]]:
        """Move a run QUEUED for `segment` to RUNNING.

        Idempotent for recovery: a run already RUNNING in `segment` is returned unchanged.
        Returns None when the segment must not run (the run was cancelled or moved on).
        """
        async with self._pool.acquire() as connection, connection.transaction():
            run = await self._get_run(connection, Scope.ALL, run_id, lock=True)
            ahead = await runs_ahead(connection, run) if run.session_id else []
            change = transitions.begin_segment(run, segment, ahead=ahead[0] if ahead else None)
            if isinstance(change, Refusal):
                return None, []
            if isinstance(change, Keep):
                return run, []
            await connection.execute(
                "UPDATE runs SET status = $2, queue_name = '' WHERE id = $1", run_id, change.status.value
            )
            events = await self.events.append_in(connection, run_id, segment, [change.event])
            return await self._get_run(connection, Scope.ALL, run_id), events

    @retried
    async def finish_segment(
        self, run_id: str, segment: int, outcome: SegmentOutcome
    ) -> tuple[Run, list[RunEvent]]:
        """Record how a segment ended: usage, output or error, snapshot, interruptions, status."""
        async with self._pool.acquire() as connection, connection.transaction():
            run = await self._get_run(connection, Scope.ALL, run_id, lock=True)
            change = transitions.finish_segment(
                run, segment, outcome.status, outcome.error.message if outcome.error else ""
            )
            if isinstance(change, Refusal):
                raise change.error()
            total = run.usage + outcome.usage
            await record_segment_usage(connection, run_id, segment, outcome.usage, total, outcome.model_calls)
            await connection.execute(
                """UPDATE runs SET status = $2, current_agent = $3, final_output = $4, error_code = $5,
                          error_message = $6
                   WHERE id = $1""",
                run_id,
                change.status.value,
                outcome.current_agent,
                outcome.final_output,
                outcome.error.code if outcome.error else None,
                outcome.error.message if outcome.error else None,
            )
            if outcome.snapshot:
                await self._insert_snapshot(connection, run_id, segment, outcome.snapshot)
            raised = await insert_interruptions(connection, run_id, segment, outcome.interruptions)
            events = await self.events.append_in(
                connection,
                run_id,
                segment,
                [
                    *outcome.events,
                    *(pending(InterruptionRaised(i)) for i in raised),
                    pending(UsageReported(outcome.usage, total, tuple(outcome.model_calls))),
                    change.event,
                ],
            )
            return await self._get_run(connection, Scope.ALL, run_id), events

    async def cancel_run(self, scope: Scope, run_id: str, error: RunError) -> tuple[Run, list[RunEvent]]:
        """Cancel a QUEUED, RUNNING or INTERRUPTED run.

        A segment still executing somewhere finds its run CANCELLED when it tries to finish,
        and its outcome is discarded.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            run = await self._get_run(connection, scope, run_id, lock=True)
            change = transitions.cancel(run, error.message)
            if isinstance(change, Refusal):
                raise change.error()
            events = await self._end(connection, run, change, error)
            return await self._get_run(connection, Scope.ALL, run_id), events

    async def decide_interruption(
        self,
        scope: Scope,
        run_id: str,
        interruption_id: str,
        decision: InterruptionStatus,
        *,
        always: bool,
        message: str,
    ) -> tuple[Interruption, list[RunEvent]]:
        """Record an approval or rejection. Repeating the same decision (status, always and
        message alike) changes nothing; any other is FAILED_PRECONDITION."""
        async with self._pool.acquire() as connection, connection.transaction():
            run = await self._get_run(connection, scope, run_id, lock=True)
            verdict = transitions.decide(run, interruption_id, decision, always=always, message=message)
            if isinstance(verdict, Refusal):
                raise verdict.error()
            if isinstance(verdict, Keep):  # the recorded decision, repeated
                return next(i for i in run.interruptions if i.id == interruption_id), []
            decided = await record_decision(
                connection, verdict.interruption.id, decision, always=always, message=message
            )
            events = await self.events.append_in(
                connection,
                run_id,
                run.segment_count,
                [pending(InterruptionDecided(decided))],
            )
            return decided, events

    # ----- helpers -----------------------------------------------------------------------

    async def _end(
        self,
        connection: Connection,
        run: Run,
        change: Change,
        error: RunError,
        events: Sequence[PendingEvent] = (),
    ) -> list[RunEvent]:
        """End a run (locked by the caller) as `change` decided, with `error`, after `events`."""
        await connection.execute(
            """UPDATE runs SET status = $2, error_code = $3, error_message = $4, queue_name = ''
               WHERE id = $1""",
            run.id,
            change.status.value,
            error.code,
            error.message,
        )
        return await self.events.append_in(connection, run.id, change.segment, [*events, change.event])

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
            raise ResourceExhaustedError(
                f"{limit} runs are already queued or running, the most this service allows at "
                "once; retry when one of them finishes or pauses.",
                reason="TOO_MANY_ACTIVE_RUNS",
                retry_after_s=ACTIVE_RUNS_RETRY_S,
            )

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
