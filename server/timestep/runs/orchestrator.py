"""RunOrchestrator: create, resume, decide, cancel, import and follow runs.

The API layer calls only this class. It validates against the current state, makes each
transition through the store (one transaction each), publishes the committed events, and
hands RUNNING segments to the SegmentExecutor as background tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from timestep.domain import (
    Interruption,
    InterruptionStatus,
    NewRun,
    Page,
    Run,
    RunError,
    RunEvent,
    RunFilter,
    RunStatus,
)
from timestep.errors import FailedPreconditionError, InvalidArgumentError
from timestep.runs.events import EventBus
from timestep.runs.segments import SegmentExecutor, SegmentHandle
from timestep.runs.streaming import follow_run
from timestep.runtime.registry import AgentRegistry
from timestep.runtime.runner import apply_decisions, load_state
from timestep.runtime.translate import interruption_for
from timestep.state.codec import PYTHON, describe
from timestep.store.runs import RunStore

log = logging.getLogger(__name__)

SERVICE_RESTARTED = RunError(
    "service_restarted",
    "The service stopped while this run was in progress; create the run again.",
)


@dataclass(frozen=True)
class RunStateExport:
    state_json: str
    schema_version: str
    agent: str


class RunOrchestrator:
    def __init__(
        self, store: RunStore, bus: EventBus, registry: AgentRegistry, executor: SegmentExecutor
    ) -> None:
        self._store = store
        self._bus = bus
        self._registry = registry
        self._executor = executor
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._handles: dict[str, SegmentHandle] = {}

    # ----- lifecycle ---------------------------------------------------------------------

    async def recover(self) -> None:
        """Fail runs a previous process left QUEUED or RUNNING: nothing is executing them."""
        self._bus.publish(await self._store.fail_unfinished_runs(SERVICE_RESTARTED))

    async def shutdown(self) -> None:
        """Stop executing segments without recording anything (the runs stay RUNNING)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ----- reads -------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run:
        return await self._store.get_run(run_id)

    async def list_runs(self, run_filter: RunFilter, page_size: int, page_token: str) -> Page[Run]:
        return await self._store.list_runs(run_filter, page_size, page_token)

    async def list_interruptions(self, run_id: str, page_size: int, page_token: str) -> Page[Interruption]:
        if not run_id:
            return await self._store.list_pending_interruptions(page_size, page_token)
        if page_token:
            raise InvalidArgumentError(
                "page_token is only used when listing pending interruptions across runs; a run's "
                "interruptions come in one page.",
                field="page_token",
            )
        return Page((await self._store.get_run(run_id)).interruptions, "")

    def follow(self, run_id: str, after_sequence: int) -> AsyncIterator[RunEvent]:
        return follow_run(self._store, self._bus, run_id, after_sequence)

    # ----- transitions -------------------------------------------------------------------

    async def create_run(self, new_run: NewRun, *, wait: bool) -> Run:
        self._registry.get(new_run.agent)  # NOT_FOUND before anything is written
        run, events, created = await self._store.create_run(new_run)
        self._bus.publish(events)
        if created:
            run = await self._start_segment(run.id, resume=False)
        return await self._wait_if(run, wait)

    async def resume_run(self, run_id: str, *, wait: bool) -> Run:
        run = await self._start_segment(run_id, resume=True)
        return await self._wait_if(run, wait)

    async def decide(
        self,
        run_id: str,
        interruption_id: str,
        decision: InterruptionStatus,
        *,
        always: bool,
        message: str = "",
    ) -> Interruption:
        interruption, events = await self._store.decide_interruption(
            run_id, interruption_id, decision, always=always, message=message
        )
        self._bus.publish(events)
        return interruption

    async def cancel_run(self, run_id: str, reason: str) -> Run:
        reason = reason or "Cancelled by CancelRun."
        task = self._tasks.get(run_id)
        if task is None:
            run, events = await self._store.cancel_stopped_run(run_id, RunError("cancelled", reason))
            self._bus.publish(events)
            return run
        self._handles[run_id].cancel(reason)
        await asyncio.gather(task, return_exceptions=True)
        run = await self._store.get_run(run_id)
        if run.status is not RunStatus.CANCELLED:
            raise FailedPreconditionError(
                f"Run {run_id} became {run.status.name} before it could be cancelled.", reason="RUN_FINISHED"
            )
        return run

    async def get_run_state(self, run_id: str) -> RunStateExport:
        """The paused run's RunState JSON with the decisions recorded so far applied."""
        run = await self._store.get_run(run_id)
        snapshot = await self._store.latest_snapshot(run_id)
        if run.status is not RunStatus.INTERRUPTED or snapshot is None:
            raise FailedPreconditionError(
                f"Run {run_id} is {run.status.name}; only an INTERRUPTED run has a RunState to export.",
                reason="RUN_NOT_INTERRUPTED",
            )
        decided = [i for i in run.interruptions if i.segment == run.segment_count]
        if all(i.status is InterruptionStatus.PENDING for i in decided):
            return RunStateExport(snapshot.state_json, snapshot.schema_version, run.agent)
        state = await load_state(self._registry.get(run.agent), snapshot.state_json)
        apply_decisions(state, decided, allow_pending=True)
        state_json = state.to_string()
        return RunStateExport(state_json, describe(state_json).schema_version, run.agent)

    async def import_run_state(self, new_run: NewRun, state_json: str) -> Run:
        agent = self._registry.get(new_run.agent)
        snapshot = describe(state_json)
        if snapshot.writer != PYTHON:
            raise InvalidArgumentError(
                f"This RunState was written by the {snapshot.writer} Agents SDK (schema "
                f"{snapshot.schema_version}); this service imports Python RunState JSON only.",
                field="state_json",
                reason="UNSUPPORTED_STATE_WRITER",
            )
        try:
            state = await load_state(agent, state_json)
        except Exception as error:
            raise InvalidArgumentError(
                f"The Agents SDK could not load this RunState for agent {agent.name!r} ({error}). Pass the "
                "unmodified RunState.to_string() of a run that started with this agent.",
                field="state_json",
                reason="STATE_NOT_LOADABLE",
            ) from error
        pending = state.get_interruptions()
        if not pending:
            raise InvalidArgumentError(
                "This RunState has no tool calls awaiting approval, so there is nothing to decide; "
                "import the state of a run that paused on an interruption.",
                field="state_json",
                reason="STATE_NOT_INTERRUPTED",
            )
        current_agent = state._current_agent.name if state._current_agent else agent.name
        run, events = await self._store.import_run(
            new_run, snapshot, current_agent, [interruption_for(item) for item in pending]
        )
        self._bus.publish(events)
        return run

    # ----- helpers -----------------------------------------------------------------------

    async def _start_segment(self, run_id: str, *, resume: bool) -> Run:
        run, events = await self._store.start_segment(run_id, resume=resume)
        self._bus.publish(events)
        handle = SegmentHandle()
        task = asyncio.create_task(self._executor.execute(run, handle), name=f"run {run_id}")
        self._tasks[run_id] = task
        self._handles[run_id] = handle
        task.add_done_callback(lambda done: self._forget(run_id, done))
        return run

    def _forget(self, run_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(run_id) is task:
            del self._tasks[run_id]
            del self._handles[run_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("run %s: segment task crashed", run_id, exc_info=task.exception())

    async def _wait_if(self, run: Run, wait: bool) -> Run:
        if not wait or run.status.is_stopped:
            return run
        async for _ in self.follow(run.id, run.last_sequence):
            pass
        return await self._store.get_run(run.id)
