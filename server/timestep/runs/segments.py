"""Executing one run segment: from RUNNING to COMPLETED, INTERRUPTED, FAILED or CANCELLED.

`SegmentExecutor.execute` is what durable execution runs as a workflow: everything a segment
does goes through it, it needs nothing but the run's id and segment number, and repeating it
after a crash neither duplicates events nor redoes recorded steps.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from timestep.changes import SegmentOutcome
from timestep.domain import (
    PendingEvent,
    Run,
    RunError,
    RunErrorCode,
    RunStatus,
    Snapshot,
)
from timestep.errors import FailedPreconditionError
from timestep.event_types import RunEvent, RunFailed, TextDelta, pending
from timestep.observability.context import run_id_var
from timestep.runs.apply import RunTransitions
from timestep.runs.events import EventBus
from timestep.runtime.failures import caused_by, describe_failure
from timestep.runtime.models import MultiModelProvider
from timestep.runtime.models.request_limits import RequestLimiter
from timestep.runtime.providers import ModelConfig
from timestep.runtime.registry import AgentRegistry
from timestep.runtime.runner import (
    AgentInput,
    apply_decisions,
    default_run_config,
    execute_segment,
)
from timestep.runtime.state_sdk import load_state
from timestep.runtime.steps import SegmentSteps, SegmentSupersededError, StepRunner
from timestep.runtime.usage import UsageRecorder, model_name_for
from timestep.settings import DEFAULT_MAX_TURNS
from timestep.state.document import StateDocument
from timestep.state.edits import edited_arguments, with_arguments
from timestep.store.retry import database_unavailable
from timestep.store.runs import RunStore
from timestep.store.session_turns import Turn
from timestep.store.sessions import PostgresSession

log = logging.getLogger(__name__)


class RunJournal:
    """Stores a segment's events as they happen and publishes them to subscribers.

    Each event gets the key "segment:ordinal": a replayed segment emits the same events in the
    same order, and the store keeps only the first of each.
    """

    def __init__(self, store: RunStore, bus: EventBus, run_id: str, segment: int) -> None:
        self._store = store
        self._bus = bus
        self._run_id = run_id
        self._segment = segment
        self._ordinal = 0

    async def on_item(self, event: PendingEvent) -> None:
        self._ordinal += 1
        keyed = replace(event, dedupe_key=f"{self._segment}:{self._ordinal}")
        await self._bus.forwarded(self._run_id)
        self._bus.publish(await self._store.events.append_events(self._run_id, self._segment, [keyed]))

    async def on_text_delta(self, delta: TextDelta) -> None:
        live = RunEvent(self._run_id, 0, self._segment, delta, datetime.now(UTC))
        self._bus.publish([live])
        if self._bus.streams_live(self._run_id):
            # A model's stream read from a full buffer does not yield to the event loop between
            # deltas: it would hold them all from the run's streams until it ends.
            await asyncio.sleep(0)


@dataclass
class SegmentExecutor:
    store: RunStore
    bus: EventBus
    registry: AgentRegistry
    pool: asyncpg.Pool
    model_config: ModelConfig
    # Built from model_config once for all segments, so model calls share connections.
    models: MultiModelProvider
    max_turns: int = DEFAULT_MAX_TURNS
    # Have the Agents SDK report spans (to OpenTelemetry, see observability/tracing.py).
    trace_segments: bool = False
    # Provider request limits, taken before each model request (None: no provider has one).
    request_limiter: RequestLimiter | None = None

    async def execute(self, run_id: str, segment: int, steps: SegmentSteps) -> Turn | None:
        """Execute segment `segment` of a run queued for it, and record how it ended; when that
        ended the run, the run of its session whose turn it is now, for the caller to launch.

        Safe to repeat (recovery replays it): starting is idempotent, events and session items
        are stored once, and an outcome that was already recorded is not recorded again. A run
        cancelled meanwhile, or waiting for its turn in its session, is left as it is.
        """
        run_id_var.set(run_id)  # log lines of this segment carry its run id
        transitions = RunTransitions(self.store)
        # Two reads at once: the model call waits for both (a failure of either raises here).
        (read, start), _ = await asyncio.gather(self.store.segment_start(run_id, segment), steps.prepare())
        run, events = await transitions.begin_segment(run_id, segment, run=read)
        self.bus.publish(events)
        if run is None:
            log.info(
                "run %s segment %s will not run now: it was cancelled, moved on or waits its turn",
                run_id,
                segment,
            )
            return None
        try:
            outcome = await self._run_to_outcome(run, segment, start, steps)
        except SegmentSupersededError as superseded:
            log.info("run %s segment %s stopped: %s", run_id, segment, superseded)
            return None
        await self.bus.forwarded(run_id)
        # Decided first on the run as it began: appending the segment's events leaves its
        # version as it was, so only another transition (a cancel) makes this read it again.
        try:
            ended, events = await transitions.finish_segment(run_id, segment, outcome, run=run)
        except FailedPreconditionError as superseded:
            log.info("run %s segment %s: outcome discarded (%s)", run_id, segment, superseded.message)
            # Possibly our own write, repeated after its reply was lost: its events were never
            # published here, so subscribers read them from the store.
            self.bus.nudge(run_id)
            return None
        self.bus.publish(events)
        log.info("run %s segment %s ended %s", run_id, segment, outcome.status.value)
        if not ended.status.is_finished:
            return None
        return await self.store.next_turn(ended.tenant, ended.session_id)

    async def _run_to_outcome(
        self, run: Run, segment: int, start: str | list[Any] | Snapshot | None, steps: StepRunner
    ) -> SegmentOutcome:
        # A waiting caller's deadline propagates into the segment: its model and tool calls are
        # cancelled when it passes (also when a recovered segment starts after it passed).
        deadline = asyncio.timeout_at(_loop_time(run.segment_deadline))
        run_config = default_run_config(
            self.models, run.model, tracing=self.trace_segments, request_limiter=self.request_limiter
        )
        # Outlives a failure: the calls made before it are counted all the same.
        recorder = UsageRecorder(run_config, self.model_config.prices)
        try:
            agent = self.registry.get(run.agent)
            problem = self.model_config.missing(model_name_for(agent, run.model))
            if problem:
                error = RunError(RunErrorCode.MODEL_NOT_CONFIGURED, problem)
                return _failed(run, error, recorder)
            async with deadline:
                return await execute_segment(
                    agent,
                    await self._input_for(run, segment, start),
                    session=(
                        PostgresSession(
                            run.session_key,
                            self.pool,
                            replay_key=f"{run.id}/{segment}",
                            run_id=run.id,
                            segment=segment,
                        )
                        if run.session_id
                        else None
                    ),
                    run_config=run_config,
                    listener=RunJournal(self.store, self.bus, run.id, segment),
                    steps=steps,
                    max_turns=self.max_turns,
                    recorder=recorder,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            superseded = caused_by(exc, SegmentSupersededError)
            if superseded is not None:
                raise superseded from exc
            if isinstance(exc, TimeoutError) and deadline.expired():
                log.info("run %s segment %s stopped: the waiting caller's deadline passed", run.id, segment)
                return _failed(run, RunError(RunErrorCode.DEADLINE_EXCEEDED, DEADLINE_PASSED), recorder)
            if database_unavailable(exc):
                raise  # not the run's failure: the segment is executed again once the database is back
            log.exception("run %s segment %s failed", run.id, segment)
            return _failed(run, describe_failure(exc), recorder)

    async def _input_for(
        self, run: Run, segment: int, start: str | list[Any] | Snapshot | None
    ) -> AgentInput:
        """The original input for a run's first segment; the decided snapshot for later ones."""
        if not isinstance(start, Snapshot):
            assert segment == 1, f"run {run.id} resumed without a snapshot"
            assert start is not None, f"run {run.id} has no input"
            return start
        decided = [i for i in run.interruptions if i.segment == segment - 1]
        document = with_arguments(StateDocument.parse(start.state_json), edited_arguments(decided))
        state = await load_state(self.registry.get(run.agent), document)
        apply_decisions(state, decided)
        return state


DEADLINE_PASSED = (
    "The deadline of the CreateRun/ResumeRun call waiting for this run passed before the run "
    "finished, so its model and tool calls were stopped. Wait with a longer deadline, or create the "
    "run without wait and follow it with StreamRunEvents."
)


def _loop_time(moment: datetime | None) -> float | None:
    """`moment` on the event loop's clock (for asyncio.timeout_at); a past moment is now."""
    if moment is None:
        return None
    loop = asyncio.get_running_loop()
    return loop.time() + max((moment - datetime.now(UTC)).total_seconds(), 0.0)


def _failed(run: Run, error: RunError, recorder: UsageRecorder) -> SegmentOutcome:
    """A failed segment's outcome, with the usage of every model call it made before failing."""
    return SegmentOutcome(
        RunStatus.FAILED,
        run.current_agent,
        recorder.total(),
        error=error,
        events=[pending(RunFailed(error))],
        model_calls=recorder.calls,
    )
