"""Starting DBOS for the service, its queues, and launching segments as workflows.

The system database is the service's own PostgreSQL database (DBOS keeps its tables in the
`dbos` schema). The application version is pinned (`DURABLE_APP_VERSION`): DBOS only recovers
workflows of its own version, and by default that is a hash of the code, so every deploy would
orphan the segments in flight. Bump it only when a change makes old segment workflows unsafe
to replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dbos import DBOS, DBOSConfig, Queue, SetWorkflowID

from timestep.durability import workflows
from timestep.durability.dbos_logs import quiet_cancelled_workflows
from timestep.durability.journal_store import JournalStore
from timestep.durability.recovery_polling import RecoveryPolling
from timestep.durability.replica_store import ReplicaStore
from timestep.durability.replicas import ReplicaMonitor
from timestep.durability.sweeper import StrandedSweeper
from timestep.runs.retention import RetentionSweeper
from timestep.runs.segments import SegmentExecutor
from timestep.settings import (
    DEFAULT_STRANDED_GRACE_S,
    ProviderLimits,
    RetentionPolicy,
    provider_limits_key,
)
from timestep.store.retry import retrying
from timestep.store.runs import RunStore

log = logging.getLogger(__name__)

DURABLE_APP_VERSION = "timestep-1"
APP_NAME = "timestep"
QUEUE_PREFIX = "timestep-"
# The DBOS schedule of retention sweeps.
RETENTION_SCHEDULE = "timestep.retention"
# How often queues look for work: the most a queued segment waits on an idle service.
QUEUE_POLLING_INTERVAL_S = 0.05
# How long forgetting a run waits for its segment workflows to record their end, and how often
# it looks.
WORKFLOW_END_WAIT_S = 5.0
WORKFLOW_END_POLL_S = 0.05


def default_executor_id(port: int) -> str:
    """Stable across restarts of one replica (so it recovers its own workflows at once) and
    distinct between replicas on one host (they listen on different ports)."""
    return f"{socket.gethostname()}:{port}"


def configure_dbos(
    database_url: str,
    *,
    executor_id: str = "local",
    app_version: str = DURABLE_APP_VERSION,
    scheduler_polling_interval_s: float = 1.0,
) -> None:
    """Create the process's DBOS instance on `database_url` (also for the Python library API)."""
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": database_url,
        "application_version": app_version,
        "executor_id": executor_id,
        "log_level": "WARNING",
        "scheduler_polling_interval_sec": scheduler_polling_interval_s,
    }
    DBOS(config=config)
    quiet_cancelled_workflows()


def ensure_dbos_launched() -> None:
    """Launch DBOS (recovering this executor's pending workflows) unless it already runs.

    Call it from the event loop that should run the workflows."""
    DBOS.launch()


def shutdown_dbos() -> None:
    """Stop this process's DBOS (pending workflows stay pending, to be recovered later)."""
    DBOS.destroy(destroy_registry=False)
    # DBOS made its thread pool the loop's default executor and has just shut it down.
    with contextlib.suppress(RuntimeError):  # no running loop: nothing to repair
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())


async def _schedule_retention(policy: RetentionPolicy | None) -> None:
    """One retention schedule for all replicas, as the replica that started last says (give
    them all the same --retention): DBOS fires each tick once, on one of them."""
    if policy is None:
        if await DBOS.get_schedule_async(RETENTION_SCHEDULE) is not None:
            await DBOS.delete_schedule_async(RETENTION_SCHEDULE)
        return
    await DBOS.apply_schedules_async(
        [
            {
                "schedule_name": RETENTION_SCHEDULE,
                "workflow_fn": workflows.retention_sweep,
                "schedule": policy.cron(),
                "context": dataclasses.asdict(policy),
            }
        ]
    )


def _queued(limits: ProviderLimits | None) -> bool:
    """Only a concurrency limit needs a queue: request limits are held at each model request."""
    return limits is not None and limits.concurrency is not None


class DurableEngine:
    """DBOS for one service process; it runs segments as workflows, queued on the queue of a
    provider with a concurrency limit and started at once otherwise."""

    def __init__(
        self,
        database_url: str,
        executor: SegmentExecutor,
        store: RunStore,
        *,
        executor_id: str,
        limits: dict[str, ProviderLimits],
        replica_timeout_s: float,
        stranded_grace_s: float = DEFAULT_STRANDED_GRACE_S,
    ) -> None:
        self._database_url = database_url
        self._executor = executor
        self.executor_id = executor_id
        self._limits = limits
        replicas = ReplicaStore(executor.pool)
        self._recovery = RecoveryPolling()
        self._replicas = ReplicaMonitor(replicas, executor_id, replica_timeout_s, self._recovery.recovering)
        self._sweeper = StrandedSweeper(store, replicas, executor.bus, self, stranded_grace_s)
        self._queues: dict[str, Queue] = {}
        self._journal = JournalStore(executor.pool)
        self._pool = executor.pool
        # The asyncio tasks executing segment workflows here, to stop a cancelled one at once.
        self._running: dict[str, asyncio.Task[Any]] = {}

    def queue_for(self, model_name: str) -> str:
        """The provider's queue when it has a concurrency limit; '' (start at once) otherwise."""
        provider = provider_limits_key(model_name, self._limits)
        return QUEUE_PREFIX + provider if _queued(self._limits.get(provider)) else ""

    @contextlib.asynccontextmanager
    async def running(
        self,
        fire_schedule: workflows.FireSchedule,
        retention: RetentionSweeper,
        policy: RetentionPolicy | None = None,
    ) -> AsyncIterator[None]:
        """DBOS for the service while in the context (recovering this replica's pending segments
        and firings), its workflows bound to this engine, to `fire_schedule` and to `retention`,
        whose sweeps `policy` schedules (none without one). Leaving it, or a failure while
        starting, stops executing segments (they stay pending, recovered later) and DBOS."""
        async with contextlib.AsyncExitStack() as stack:
            workflows.bind(
                workflows.Bindings(
                    self._executor,
                    self._journal,
                    self.executor_id,
                    fire_schedule,
                    self._running,
                    retention,
                    self.launch,
                )
            )
            stack.callback(workflows.bind, None)
            configure_dbos(self._database_url, executor_id=self.executor_id)
            stack.callback(shutdown_dbos)
            stack.push_async_callback(self._cancel_running)
            # Launching recovers this replica's pending workflows: execute them at once.
            self._recovery.recovering()
            stack.callback(self._recovery.close)
            ensure_dbos_launched()
            await _schedule_retention(policy)
            # Only providers with a concurrency limit get queues: each one polls the database while idle.
            for provider, limits in sorted(self._limits.items()):
                if not _queued(limits):
                    continue
                self._queues[QUEUE_PREFIX + provider] = await DBOS.register_queue_async(
                    QUEUE_PREFIX + provider,
                    global_concurrency=limits.concurrency,
                    polling_interval_sec=QUEUE_POLLING_INTERVAL_S,
                    on_conflict="always_update",
                )
            stack.push_async_callback(self._replicas.stop)
            await self._replicas.start()
            stack.push_async_callback(self._sweeper.stop)
            self._sweeper.start()
            yield

    async def _cancel_running(self) -> None:
        running = list(self._running.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def queue_position(self, run_id: str, segment: int, queue_name: str) -> int:
        queued = await DBOS.list_queued_workflows_async(
            queue_name=queue_name, status="ENQUEUED", load_input=False, load_output=False
        )
        ids = [w.workflow_id for w in queued]
        workflow_id = workflows.segment_workflow_id(run_id, segment)
        return ids.index(workflow_id) if workflow_id in ids else 0

    # ----- SegmentLauncher ---------------------------------------------------------------

    async def launch(self, run_id: str, segment: int, queue_name: str) -> None:
        with SetWorkflowID(workflows.segment_workflow_id(run_id, segment)):
            if queue_name:
                queue = await self._queue(queue_name)
                await queue.enqueue_async(workflows.run_segment, run_id, segment)
            else:
                # No limits to wait for: start now rather than at a queue's next poll. The
                # workflow id makes a repeated launch a no-op (only its first starter executes
                # it); after a crash DBOS recovers it through its internal queue (polled fast
                # after a recovery, see recovery_polling.py), where a dequeued one goes back to
                # its own queue.
                await DBOS.start_workflow_async(workflows.run_segment, run_id, segment)

    async def _queue(self, name: str) -> Queue:
        """A queue this replica registered, or one another replica configured (a run queued
        under another replica's provider limits, or before this one's limits were removed): join
        it as it is, without changing its limits."""
        if name not in self._queues:
            self._queues[name] = await DBOS.register_queue_async(
                name, polling_interval_sec=QUEUE_POLLING_INTERVAL_S, on_conflict="never_update"
            )
        return self._queues[name]

    async def forget(self, runs: Sequence[tuple[str, int]]) -> None:
        """Delete the runs' segment workflow records (status, inputs, outputs, steps), and the
        records other workflows (a schedule's firing, the segment before it on the session) keep
        of having started them: nothing of DBOS's still names the runs. One DBOS call for all of
        them (within a retention sweep, each call is a step the sweep records)."""
        workflow_ids = [
            workflows.segment_workflow_id(run_id, n)
            for run_id, segments in runs
            for n in range(1, segments + 1)
        ]
        if not workflow_ids:
            return
        await self._ended(workflow_ids)
        await DBOS.delete_workflows_async(workflow_ids, delete_children=True)
        # A parent's record of a child it started is only read when the parent replays, and a
        # parent that started a segment of a finished run has ended.
        await retrying(
            lambda: self._pool.execute(
                "DELETE FROM dbos.operation_outputs WHERE child_workflow_id = ANY($1::text[])", workflow_ids
            ),
            what="forget workflow records",
            pool=self._pool,
        )

    async def _ended(self, workflow_ids: list[str]) -> None:
        """Wait (a while) until these workflows have recorded how they ended: a segment that
        finished its run is still recording its own end for a moment, which would otherwise be
        written after its records were deleted. One that does not end in time (its replica
        died) is deleted all the same: recovery then finds nothing to recover."""
        deadline = asyncio.get_running_loop().time() + WORKFLOW_END_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            live = await retrying(
                lambda: self._pool.fetchval(
                    """SELECT count(*) FROM dbos.workflow_status WHERE workflow_uuid = ANY($1::text[])
                         AND status IN ('PENDING', 'ENQUEUED', 'DELAYED')""",
                    workflow_ids,
                ),
                what="workflow status",
                pool=self._pool,
            )
            if not live:
                return
            await asyncio.sleep(WORKFLOW_END_POLL_S)  # DBOS announces no workflow's end

    async def stop(self, run_id: str, segment: int) -> None:
        workflow_id = workflows.segment_workflow_id(run_id, segment)
        await DBOS.cancel_workflow_async(workflow_id)
        task = self._running.get(workflow_id)
        if task is not None:  # stop the model or tool call in flight here, now
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
