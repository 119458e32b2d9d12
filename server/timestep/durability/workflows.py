"""The DBOS workflows. They are module-level (DBOS registers them before launch) and find the
service's components through `bind`, since workflow arguments must be plain data."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dbos import DBOS

from timestep.durability.journal_store import JournalStore
from timestep.durability.steps import JournaledSteps
from timestep.runs.retention import RetentionSweeper
from timestep.runs.segments import SegmentExecutor
from timestep.settings import RetentionPolicy
from timestep.store.retry import retrying
from timestep.store.session_turns import Turn


def segment_workflow_id(run_id: str, segment: int) -> str:
    """One workflow per run segment: a retried launch or ResumeRun cannot start a second one."""
    return f"{run_id}/segment-{segment}"


# Called by schedule firings to create runs: (scheduled time, the schedule's context) -> None.
FireSchedule = Callable[[datetime, Any], Awaitable[None]]


@dataclass(frozen=True)
class Bindings:
    executor: SegmentExecutor
    journal: JournalStore
    executor_id: str
    fire_schedule: FireSchedule
    # The asyncio tasks executing segment workflows here, to stop a cancelled one at once.
    running: dict[str, asyncio.Task[Any]]
    retention: RetentionSweeper
    # Launches a segment (the next run of a session, once a segment ended its run).
    launch: Callable[[str, int, str], Awaitable[None]]


_bindings: Bindings | None = None


def bind(bindings: Bindings | None) -> None:
    global _bindings
    _bindings = bindings


def bound() -> Bindings:
    if _bindings is None:
        raise RuntimeError("timestep durability is not started in this process")
    return _bindings


@DBOS.workflow(name="timestep.run_segment")
async def run_segment(run_id: str, segment: int) -> None:
    bindings = bound()
    workflow_id = segment_workflow_id(run_id, segment)
    task = asyncio.current_task()
    if task is not None:
        bindings.running[workflow_id] = task

    async def execute() -> Turn | None:
        # Each attempt replays the journal from the start (executing a segment is idempotent).
        steps = JournaledSteps(bindings.journal, run_id, segment, bindings.executor_id)
        return await bindings.executor.execute(run_id, segment, steps)

    try:
        # The store waits out the database at each durable write; this catches what escapes
        # elsewhere. A segment that still ends in error is recovered by the sweeper.
        turn = await retrying(execute, what=f"segment {workflow_id}", pool=bindings.executor.pool)
    finally:
        bindings.running.pop(workflow_id, None)
    if turn is not None:  # the next run of the session
        await bindings.launch(turn.run_id, turn.segment, turn.queue_name)


FIRE_SCHEDULE = "timestep.fire_schedule"


@DBOS.workflow(name=FIRE_SCHEDULE)
async def fire_schedule(scheduled_time: datetime, context: Any) -> None:
    await bound().fire_schedule(scheduled_time, context)


RETENTION_SWEEP = "timestep.retention_sweep"


@DBOS.workflow(name=RETENTION_SWEEP)
async def retention_sweep(scheduled_time: datetime, context: Any) -> None:
    """One retention sweep, with the policy of the replica that scheduled it (`context`), then
    the records of the sweeps before it: a sweep a minute must not grow DBOS's tables either."""
    bindings = bound()
    await bindings.retention.sweep(RetentionPolicy(**context))
    pool = bindings.executor.pool
    ended = await retrying(
        lambda: pool.fetch(
            """SELECT workflow_uuid FROM dbos.workflow_status
               WHERE name = $1 AND status IN ('SUCCESS', 'ERROR', 'CANCELLED')""",
            RETENTION_SWEEP,
        ),
        what="ended retention sweeps",
        pool=pool,
    )
    if ended:
        await DBOS.delete_workflows_async([row["workflow_uuid"] for row in ended])
