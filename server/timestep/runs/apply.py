"""Run transitions end to end: read the run, decide with `timestep.runs.transitions`, and have
the store apply the decision in one statement (a compare-and-set on the run's version). A
decision that lost a race (the run changed after it was read) is made again on a fresh read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from timestep.changes import Admission, Admit, RunChange, SegmentOutcome, SegmentUsage
from timestep.domain import (
    Interruption,
    InterruptionStatus,
    MultitaskStrategy,
    NewInterruption,
    PendingEvent,
    Run,
    RunError,
    RunErrorCode,
    RunStatus,
)
from timestep.errors import UnavailableError
from timestep.event_types import (
    InterruptionDecided,
    InterruptionExpired,
    InterruptionRaised,
    RunEvent,
    RunFailed,
    UsageReported,
    pending,
)
from timestep.runs import transitions
from timestep.runs.transitions import Change, Keep, Record, Refusal
from timestep.scope import Scope
from timestep.store.runs import RunStore

# How soon to retry a transition that kept losing races.
CONTENDED_RETRY_S = 0.1
# How often a transition is decided again after losing a race before giving up.
ATTEMPTS = 20

# The statuses that count against a tenant's limit on active runs.
_ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)

Decide = Callable[[Run], RunChange | Keep | Refusal]


class RunTransitions:
    """Applies the decisions of `timestep.runs.transitions` through the store."""

    def __init__(self, store: RunStore) -> None:
        self._store = store

    async def apply(
        self, scope: Scope, run_id: str, decide: Decide, *, run: Run | None = None, segment: bool = False
    ) -> tuple[Run, list[RunEvent]] | Refusal:
        """Decide on `run` (or the run as read now) and apply: the run as it became and the
        events written; the run unchanged and no events when the decision is to keep it; the
        refusal when the command does not apply. A `segment`'s own transitions wait out the
        database (see `RunStore.apply`)."""
        for _ in range(ATTEMPTS):
            if run is None:
                run = await self._store.get_run(scope, run_id)
            decision = decide(run)
            if isinstance(decision, Refusal):
                return decision
            if isinstance(decision, Keep):
                return run, []
            events = await self._store.apply(decision, wait_out_database=segment)
            if events is not None:
                last = events[-1]
                return (
                    replace(
                        decision.run,
                        version=decision.version + 1,
                        last_sequence=last.sequence,
                        update_time=last.time,
                    ),
                    events,
                )
            run = None  # lost a race: read again
        raise UnavailableError(
            f"Run {run_id} kept changing while this call tried to change it; retry.",
            reason="RUN_CONTENDED",
            retry_after_s=CONTENDED_RETRY_S,
        )

    async def required(
        self, scope: Scope, run_id: str, decide: Decide, *, run: Run | None = None, segment: bool = False
    ) -> tuple[Run, list[RunEvent]]:
        """`apply`, raising a refusal as its error."""
        applied = await self.apply(scope, run_id, decide, run=run, segment=segment)
        if isinstance(applied, Refusal):
            raise applied.error()
        return applied

    # ----- the commands ------------------------------------------------------------------

    async def begin_segment(
        self, run_id: str, segment: int, *, run: Run | None = None
    ) -> tuple[Run | None, list[RunEvent]]:
        """Move a run QUEUED for `segment` to RUNNING; a run already RUNNING `segment` is
        returned unchanged (recovery repeats this); None when the segment must not run (also
        while a run ahead of it in its session is active: it waits its turn)."""
        run = run or await self._store.get_run(Scope.ALL, run_id)
        ahead = await self._store.run_ahead(run)
        begun = await self.apply(Scope.ALL, run_id, begin_segment(segment, ahead), run=run, segment=True)
        return (None, []) if isinstance(begun, Refusal) else begun

    async def finish_segment(
        self, run_id: str, segment: int, outcome: SegmentOutcome, *, run: Run | None = None
    ) -> tuple[Run, list[RunEvent]]:
        """Record how a segment ended: usage, output or error, snapshot, interruptions, status
        (FAILED_PRECONDITION when the run moved on)."""
        return await self.required(Scope.ALL, run_id, finish_segment(segment, outcome), run=run, segment=True)

    async def fail_stranded(
        self, run_id: str, segment: int, error: RunError
    ) -> tuple[Run, list[RunEvent]] | None:
        """FAIL a run still QUEUED or RUNNING `segment`; None if it moved on meanwhile."""
        failed = await self.apply(Scope.ALL, run_id, fail_stranded(segment, error))
        return None if isinstance(failed, Refusal) else failed

    async def queue_resume(
        self,
        scope: Scope,
        run_id: str,
        queue_name: str = "",
        *,
        deadline: datetime | None = None,
        run: Run | None = None,
    ) -> tuple[Run, list[RunEvent]]:
        """Queue the next segment of an INTERRUPTED run whose interruptions are all decided (to
        stop at `deadline`, if given)."""
        return await self.required(scope, run_id, resume(queue_name, deadline), run=run)

    async def cancel_run(self, scope: Scope, run_id: str, error: RunError) -> tuple[Run, list[RunEvent]]:
        """Cancel a QUEUED, RUNNING or INTERRUPTED run. A segment still executing somewhere
        finds its run CANCELLED when it tries to finish, and its outcome is discarded."""
        return await self.required(scope, run_id, cancel(error))

    async def decide_interruption(
        self,
        scope: Scope,
        run_id: str,
        interruption_id: str,
        decision: InterruptionStatus,
        *,
        always: bool,
        message: str,
        arguments_json: str = "",
        decided_by: str = "",
    ) -> tuple[Interruption, list[RunEvent]]:
        """Record an approval (with `arguments_json` to run instead of the proposed ones, if
        given) or rejection, by `decided_by`. Repeating the same decision (status, always,
        message and edited arguments alike) changes nothing; any other is FAILED_PRECONDITION."""
        decide = decide_interruption(
            interruption_id,
            decision,
            always=always,
            message=message,
            arguments_json=arguments_json,
            decided_by=decided_by,
        )
        run, events = await self.required(scope, run_id, decide)
        return next(i for i in run.interruptions if i.id == interruption_id), events

    async def expire(
        self, run_id: str, interruption_id: str, now: datetime, default_message: str
    ) -> tuple[Interruption, list[RunEvent]] | None:
        """Reject an interruption whose approval timed out, telling the model the run's expiry
        message (else `default_message`); None when there is nothing to expire (decided
        meanwhile, or expired by another replica)."""
        run, events = await self.required(Scope.ALL, run_id, expire(interruption_id, now, default_message))
        if not events:
            return None
        return next(i for i in run.interruptions if i.id == interruption_id), events

    async def resume_on_expiry(self, run_id: str, queue_name: str) -> tuple[Run, list[RunEvent]] | None:
        """Queue the next segment (on `queue_name`) of a run that resumes once expiry has
        decided its approvals; None when it does not (any more). A tenant at its limit of active
        runs is refused (RESOURCE_EXHAUSTED), to be tried again."""
        run, events = await self.required(Scope.ALL, run_id, resume_on_expiry(queue_name))
        return (run, events) if events else None


# ----- decisions as changes ------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _changed(run: Run, change: Change, events: Sequence[PendingEvent] = (), **columns: object) -> RunChange:
    return RunChange(
        replace(run, status=change.status, **columns),  # type: ignore[arg-type]
        run.version,
        change.segment,
        [*events, change.event],
        adds_active=change.status in _ACTIVE and run.status not in _ACTIVE,
    )


def begin_segment(segment: int, ahead: Run | None = None) -> Decide:
    def decide(run: Run) -> RunChange | Keep | Refusal:
        change = transitions.begin_segment(run, segment, ahead=ahead)
        if not isinstance(change, Change):
            return change
        return _changed(run, change, queue_name="")

    return decide


def _ending(run: Run, change: Change, error: RunError, events: Sequence[PendingEvent] = ()) -> RunChange:
    return _changed(run, change, events, error=error, queue_name="")


def cancel(error: RunError) -> Decide:
    def decide(run: Run) -> RunChange | Refusal:
        change = transitions.cancel(run, error.message)
        return change if isinstance(change, Refusal) else _ending(run, change, error)

    return decide


def fail_stranded(segment: int, error: RunError) -> Decide:
    def decide(run: Run) -> RunChange | Refusal:
        change = transitions.fail_stranded(run, segment, error.message)
        if isinstance(change, Refusal):
            return change
        return _ending(
            run,
            change,
            error,
            [pending(RunFailed(error))],
        )

    return decide


def resume(queue_name: str, deadline: datetime | None) -> Decide:
    def decide(run: Run) -> RunChange | Refusal:
        change = transitions.resume(run)
        if isinstance(change, Refusal):
            return change
        return _changed(
            run, change, segment_count=change.segment, queue_name=queue_name, segment_deadline=deadline
        )

    return decide


def decide_interruption(
    interruption_id: str,
    decision: InterruptionStatus,
    *,
    always: bool,
    message: str,
    arguments_json: str = "",
    decided_by: str = "",
) -> Decide:
    def decide(run: Run) -> RunChange | Keep | Refusal:
        verdict = transitions.decide(
            run, interruption_id, decision, always=always, message=message, arguments_json=arguments_json
        )
        if not isinstance(verdict, Record):
            return verdict
        decided = replace(
            verdict.interruption,
            status=decision,
            always=always,
            message=message,
            approved_arguments_json=arguments_json,
            decided_by=decided_by,
            decide_time=_now(),
        )
        return _recorded(run, decided, [pending(InterruptionDecided(decided))])

    return decide


def _recorded(run: Run, decided: Interruption, events: Sequence[PendingEvent]) -> RunChange:
    """The change that records the decision of one of the run's interruptions."""
    return RunChange(
        replace(run, interruptions=[decided if i.id == decided.id else i for i in run.interruptions]),
        run.version,
        run.segment_count,
        events,
        decision=decided,
    )


# Who `decided_by` names for an interruption whose approval expired.
EXPIRY_DECIDER = "timestep:expiry"


def expire(interruption_id: str, now: datetime, default_message: str) -> Decide:
    def decide(run: Run) -> RunChange | Keep:
        verdict = transitions.expire(run, interruption_id, now)
        if not isinstance(verdict, Record):
            return verdict
        decided = replace(
            verdict.interruption,
            status=InterruptionStatus.REJECTED,
            message=run.approval.expiry_message or default_message,
            decided_by=EXPIRY_DECIDER,
            expired=True,
            decide_time=_now(),
        )
        return _recorded(
            run, decided, [pending(InterruptionExpired(decided)), pending(InterruptionDecided(decided))]
        )

    return decide


def resume_on_expiry(queue_name: str) -> Decide:
    def decide(run: Run) -> RunChange | Keep:
        change = transitions.resume_on_expiry(run)
        if not isinstance(change, Change):
            return change
        return _changed(
            run, change, segment_count=change.segment, queue_name=queue_name, segment_deadline=None
        )

    return decide


def new_interruptions(
    run_id: str, segment: int, found: Sequence[NewInterruption], timeout: timedelta | None = None
) -> list[Interruption]:
    """The interruptions a segment paused on, with their ids (pending ones expiring after
    `timeout`, the run's approval timeout, if it has one). Their times are a microsecond apart,
    so that they list in the order the segment paused on them (by time, then id)."""
    now = _now()
    return [
        Interruption(
            id=f"int_{uuid.uuid4().hex}",
            run_id=run_id,
            segment=segment,
            agent=item.agent,
            tool_name=item.tool_name,
            call_id=item.call_id,
            arguments_json=item.arguments_json,
            status=item.status,
            always=item.always,
            message=item.message,
            create_time=now + timedelta(microseconds=index),
            decide_time=None if item.status is InterruptionStatus.PENDING else now,
            expire_time=(
                now + timedelta(microseconds=index) + timeout
                if timeout is not None and item.status is InterruptionStatus.PENDING
                else None
            ),
        )
        for index, item in enumerate(found)
    ]


def finish_segment(segment: int, outcome: SegmentOutcome) -> Decide:
    def decide(run: Run) -> RunChange | Refusal:
        change = transitions.finish_segment(
            run, segment, outcome.status, outcome.error.message if outcome.error else ""
        )
        if isinstance(change, Refusal):
            return change
        total = run.usage + outcome.usage
        paused = new_interruptions(run.id, segment, outcome.interruptions, run.approval.timeout)
        events = [
            *outcome.events,
            *(pending(InterruptionRaised(i)) for i in paused),
            pending(UsageReported(outcome.usage, total, tuple(outcome.model_calls))),
        ]
        changed = _changed(
            run,
            change,
            events,
            current_agent=outcome.current_agent,
            final_output=outcome.final_output,
            error=outcome.error,
            usage=total,
            interruptions=[*run.interruptions, *paused],
        )
        return replace(
            changed,
            interruptions=paused,
            snapshot=outcome.snapshot,
            usage=SegmentUsage(outcome.usage, outcome.model_calls),
        )

    return decide


def admission(strategy: MultitaskStrategy, session_id: str) -> Admit:
    """How a new run of session `session_id` joins it under `strategy` (`transitions.admit`), as
    the store writes it: refused (raised), waiting, or cancelling the runs ahead of it."""

    def admit(run_id: str, ahead: list[Run]) -> Admission:
        decided = transitions.admit(run_id, session_id, ahead, strategy)
        if isinstance(decided, Refusal):
            raise decided.error()
        return Admission(
            queued_reason=decided.reason,
            cancel=[
                _ending(run, change, RunError(RunErrorCode.CANCELLED, change.reason))
                for run, change in decided.cancel
            ],
            remove_items_of=[run.id for run, _ in decided.cancel] if decided.rollback else [],
        )

    return admit
