"""Executing one run segment: from RUNNING to COMPLETED, INTERRUPTED, FAILED or CANCELLED.

`SegmentExecutor.execute` is the seam where durable execution plugs in: everything a segment
does goes through it, and it needs nothing but the run's id and segment number.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from timestep.domain import EventKind, PendingEvent, Run, RunError, RunEvent, RunStatus, Usage
from timestep.runs.events import EventBus
from timestep.runtime.failures import describe_failure
from timestep.runtime.providers import ModelConfig
from timestep.runtime.registry import AgentRegistry
from timestep.runtime.runner import (
    DEFAULT_MAX_TURNS,
    AgentInput,
    SegmentResult,
    apply_decisions,
    default_run_config,
    execute_segment,
    load_state,
)
from timestep.state.codec import PYTHON, describe
from timestep.store.runs import RunStore, SegmentOutcome
from timestep.store.sessions import PostgresSession

log = logging.getLogger(__name__)


@dataclass
class SegmentHandle:
    """What the orchestrator holds of an executing segment, to cancel its work."""

    work: asyncio.Task[SegmentOutcome] | None = None
    cancel_reason: str | None = None

    def cancel(self, reason: str) -> None:
        self.cancel_reason = reason
        if self.work is not None:
            self.work.cancel()


class RunJournal:
    """Stores a segment's events as they happen and publishes them to subscribers."""

    def __init__(self, store: RunStore, bus: EventBus, run_id: str, segment: int) -> None:
        self._store = store
        self._bus = bus
        self._run_id = run_id
        self._segment = segment

    async def on_item(self, event: PendingEvent) -> None:
        self._bus.publish(await self._store.append_events(self._run_id, self._segment, [event]))

    async def on_text_delta(self, payload: dict[str, Any]) -> None:
        live = RunEvent(self._run_id, 0, self._segment, EventKind.TEXT_DELTA, payload, datetime.now(UTC))
        self._bus.publish([live])


@dataclass
class SegmentExecutor:
    store: RunStore
    bus: EventBus
    registry: AgentRegistry
    pool: asyncpg.Pool
    model_config: ModelConfig
    max_turns: int = DEFAULT_MAX_TURNS

    async def execute(self, run: Run, handle: SegmentHandle) -> None:
        """Run the segment the run is RUNNING in and record how it ended.

        The agent's work runs as its own task so that `handle.cancel` stops only the work and
        the outcome (CANCELLED) is still recorded, while cancelling this coroutine itself (the
        service shutting down) records nothing and leaves the run to recovery.
        """
        segment = run.segment_count
        work = asyncio.create_task(self._run_to_outcome(run, segment), name=f"run {run.id} segment {segment}")
        handle.work = work
        if handle.cancel_reason is not None:
            work.cancel()
        try:
            outcome = await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if handle.cancel_reason is None or (current is not None and current.cancelling()):
                raise
            outcome = SegmentOutcome(
                RunStatus.CANCELLED,
                run.current_agent,
                Usage(),
                error=RunError("cancelled", handle.cancel_reason),
            )
        _, events = await self.store.finish_segment(run.id, segment, outcome)
        self.bus.publish(events)

    async def _run_to_outcome(self, run: Run, segment: int) -> SegmentOutcome:
        try:
            problem = self.model_config.missing()
            if problem:
                error = RunError("model_not_configured", problem)
                return _failed(run, error)
            agent = self.registry.get(run.agent)
            result = await execute_segment(
                agent,
                await self._input_for(run, segment),
                session=PostgresSession(run.session_id, self.pool) if run.session_id else None,
                run_config=default_run_config(self.model_config, run.model),
                listener=RunJournal(self.store, self.bus, run.id, segment),
                max_turns=self.max_turns,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("run %s segment %s failed", run.id, segment)
            return _failed(run, describe_failure(exc))
        return _outcome_of(result)

    async def _input_for(self, run: Run, segment: int) -> AgentInput:
        """The original input for a run's first segment; the decided snapshot for later ones."""
        if segment == 1:
            return await self.store.get_run_input(run.id)
        snapshot = await self.store.latest_snapshot(run.id)
        assert snapshot is not None, f"run {run.id} resumed without a snapshot"
        state = await load_state(self.registry.get(run.agent), snapshot.state_json)
        apply_decisions(state, [i for i in run.interruptions if i.segment == segment - 1])
        return state


def _failed(run: Run, error: RunError) -> SegmentOutcome:
    return SegmentOutcome(
        RunStatus.FAILED,
        run.current_agent,
        Usage(),
        error=error,
        events=[PendingEvent(EventKind.ERROR, {"code": error.code, "message": error.message})],
    )


def _outcome_of(result: SegmentResult) -> SegmentOutcome:
    if result.state_json is not None:
        snapshot = describe(result.state_json)
        assert snapshot.writer == PYTHON
        return SegmentOutcome(
            RunStatus.INTERRUPTED,
            result.last_agent,
            result.usage,
            snapshot=snapshot,
            interruptions=result.interruptions,
        )
    return SegmentOutcome(
        RunStatus.COMPLETED,
        result.last_agent,
        result.usage,
        final_output=result.final_output,
        events=[
            PendingEvent(EventKind.FINAL_OUTPUT, {"agent": result.last_agent, "output": result.final_output})
        ],
    )
