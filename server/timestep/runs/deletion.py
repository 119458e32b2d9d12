"""Deleting runs and sessions, for callers (DeleteRun, DeleteSession) and for retention.

One path for all three: cancel what must stop first (only when asked to force), have the
launcher forget the runs' segment workflows, then delete the rows (`timestep.store.deletion`),
which re-checks under the rows' locks that none of them is executing. Forgetting first means an
interrupted delete leaves the run in place (to be deleted again), never workflow records of a
run that is gone."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from timestep.domain import Deletion, RunStatus
from timestep.errors import FailedPreconditionError, NotFoundError
from timestep.runs.launcher import SegmentLauncher
from timestep.runs.orchestrator import RunOrchestrator
from timestep.scope import Scope
from timestep.store.deletion import DeletionStore, RunRecord, run_active, session_active
from timestep.store.rows import run_not_found

log = logging.getLogger(__name__)

_EXECUTING = (RunStatus.QUEUED, RunStatus.RUNNING)
# Runs deleted per transaction by retention.
RETENTION_CHUNK = 100


class RunDeleter:
    def __init__(
        self, store: DeletionStore, orchestrator: RunOrchestrator, launcher: SegmentLauncher
    ) -> None:
        self._store = store
        self._runs = orchestrator
        self._launcher = launcher

    async def delete_run(
        self, scope: Scope, run_id: str, *, force: bool, allow_missing: bool
    ) -> Deletion | None:
        """Delete the run; None when it does not exist and `allow_missing`."""
        try:
            record = await self._store.find_run(scope, run_id)
            if record is None:
                raise run_not_found(run_id)
            if record.status in _EXECUTING:
                if not force:
                    raise run_active(run_id, record.status.value)
                await self._cancel(scope, record.id)
            await self._launcher.forget([(record.id, record.segment_count)])
            deleted = await self._store.delete_run(scope, run_id)
            # A deleted INTERRUPTED run held its session's turn.
            await self._runs.launch_next(record.tenant, record.session_id)
            return deleted
        except NotFoundError:
            if allow_missing:
                return None
            raise

    async def delete_session(
        self, scope: Scope, session_id: str, *, delete_runs: bool, force: bool, allow_missing: bool
    ) -> Deletion:
        """Delete the session's items, and its runs with `delete_runs`."""
        runs = await self._store.runs_of_session(scope, session_id)
        executing = [run for run in runs if run.status in _EXECUTING]
        if executing and not force:
            raise session_active(session_id, executing[0].id)
        # The last first: cancelling a run launches the next one of its session, if any waits.
        for run in reversed(executing):
            await self._cancel(scope, run.id)
        if delete_runs:
            await self._launcher.forget([(run.id, run.segment_count) for run in runs])
        try:
            return await self._store.delete_session(
                scope, session_id, [run.id for run in runs] if delete_runs else []
            )
        except NotFoundError:
            if allow_missing:
                return Deletion()
            raise

    async def expire(self, older_than: timedelta, limit: int) -> Deletion:
        """Delete up to `limit` finished runs, not kept, unchanged for longer than `older_than`,
        oldest first, with their session items and workflow records."""
        deleted = Deletion()
        expired = await self._store.expired_runs(older_than, limit)
        for start in range(0, len(expired), RETENTION_CHUNK):
            chunk: list[RunRecord] = expired[start : start + RETENTION_CHUNK]
            await self._launcher.forget([(run.id, run.segment_count) for run in chunk])
            deleted += await self._store.delete_expired([run.id for run in chunk], older_than)
        await self._store.record_sweep(deleted)
        return deleted

    async def keep(self, scope: Scope, run_id: str, keep: bool) -> None:
        """Exempt the run from retention (`keep`), or no longer."""
        await self._store.set_keep(scope, run_id, keep)

    async def _cancel(self, scope: Scope, run_id: str) -> None:
        # One that finished meanwhile is deletable as it is.
        with contextlib.suppress(FailedPreconditionError):
            await self._runs.cancel_run(scope, run_id, "Cancelled to delete it.")
