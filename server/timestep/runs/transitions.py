"""The run state machine as pure decisions: given a run as the store read it under its row lock
and a command, what changes (or why the command is refused). No I/O here: the store
(`timestep.store.runs`) writes what these decide, in the command's transaction.

    QUEUED ──begin──▶ RUNNING ──finish──▶ COMPLETED | FAILED | INTERRUPTED
    INTERRUPTED ──(decide each interruption) resume──▶ QUEUED (next segment)
    QUEUED | RUNNING | INTERRUPTED ──cancel──▶ CANCELLED
    QUEUED | RUNNING ──fail stranded──▶ FAILED
    INTERRUPTED ──expire (an approval timed out)──▶ INTERRUPTED ──resume on expiry──▶ QUEUED

A run of a session begins only when no run ahead of it in the session is QUEUED, RUNNING or
INTERRUPTED; a new run of a busy session is admitted as its multitask strategy says (`admit`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from timestep.changes import status_changed
from timestep.domain import (
    SESSION_ACTIVE_STATUSES,
    Interruption,
    InterruptionStatus,
    MultitaskStrategy,
    PendingEvent,
    Run,
    RunStatus,
)
from timestep.errors import FailedPreconditionError, NotFoundError, TimestepError

# How much of a recorded rejection message an error repeats (trailers are small).
ECHOED_MESSAGE_LENGTH = 1024

# The statuses a segment can end a run in.
SEGMENT_ENDINGS = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.INTERRUPTED})


@dataclass(frozen=True)
class Change:
    """Move the run to `status` in `segment`, announced by `event`."""

    status: RunStatus
    segment: int
    reason: str = ""

    @property
    def event(self) -> PendingEvent:
        return status_changed(self.status, self.reason)


@dataclass(frozen=True)
class Keep:
    """Write nothing: the command was already applied (a repeat, e.g. on recovery)."""


@dataclass(frozen=True)
class Record:
    """Record the decision of a pending interruption; the run's status stays."""

    interruption: Interruption


class RefusalKind(enum.Enum):
    NOT_FOUND = "not_found"
    FAILED_PRECONDITION = "failed_precondition"


@dataclass(frozen=True)
class Refusal:
    """Why a command does not apply to the run as it is."""

    kind: RefusalKind
    reason: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)

    def error(self) -> TimestepError:
        if self.kind is RefusalKind.NOT_FOUND:
            return NotFoundError(self.message, reason=self.reason)
        return FailedPreconditionError(self.message, reason=self.reason, metadata=self.metadata or None)


def _precondition(reason: str, message: str, metadata: dict[str, str] | None = None) -> Refusal:
    return Refusal(RefusalKind.FAILED_PRECONDITION, reason, message, metadata or {})


def _superseded(run: Run, segment: int) -> Refusal:
    return _precondition(
        "SEGMENT_SUPERSEDED",
        f"Run {run.id} is {run.status.name} in segment {run.segment_count}; "
        f"segment {segment} can no longer finish it.",
    )


def _segment_live(run: Run, segment: int) -> bool:
    return run.segment_count == segment and run.status in (RunStatus.QUEUED, RunStatus.RUNNING)


def begin_segment(run: Run, segment: int, *, ahead: Run | None = None) -> Change | Keep | Refusal:
    """QUEUED → RUNNING; a run already RUNNING `segment` is kept (recovery repeats this). A run
    with a run `ahead` of it in its session (QUEUED, RUNNING or INTERRUPTED) waits its turn."""
    if not _segment_live(run, segment):
        return _superseded(run, segment)
    if run.status is RunStatus.RUNNING:
        return Keep()
    if ahead is not None:
        return _session_busy(run.session_id, ahead, f"run {run.id} waits its turn")
    return Change(RunStatus.RUNNING, segment)


@dataclass(frozen=True)
class Admitted:
    """A new run's place in its busy session: it waits behind `waits_for` ('' : it starts at
    once), after the runs ahead of it in `cancel` are cancelled (each with its change) and, with
    `rollback`, the items they added are removed from the session."""

    waits_for: str = ""
    cancel: tuple[tuple[Run, Change], ...] = ()
    rollback: bool = False

    @property
    def reason(self) -> str:
        """What the new run's QUEUED event says."""
        return f"waiting for run {self.waits_for}" if self.waits_for else ""


def admit(run_id: str, session_id: str, ahead: list[Run], strategy: MultitaskStrategy) -> Admitted | Refusal:
    """How new run `run_id` joins session `session_id`, whose runs `ahead` of it (in arrival
    order) may be QUEUED, RUNNING or INTERRUPTED: REJECT refuses it; ENQUEUE has it wait behind
    the last active one; INTERRUPT cancels them (ROLLBACK also removes their items) so that it
    starts at once."""
    active = [run for run in ahead if run.status in SESSION_ACTIVE_STATUSES]
    if not active:
        return Admitted()
    if strategy is MultitaskStrategy.REJECT:
        return _session_busy(session_id, active[0], "the multitask strategy is REJECT")
    if strategy is MultitaskStrategy.ENQUEUE:
        return Admitted(waits_for=active[-1].id)
    reason = f"Interrupted by run {run_id} (multitask strategy {strategy.name})."
    cancelled = []
    for run in active:
        change = cancel(run, reason)
        assert isinstance(change, Change), "an active run can be cancelled"
        cancelled.append((run, change))
    return Admitted(cancel=tuple(cancelled), rollback=strategy is MultitaskStrategy.ROLLBACK)


def _session_busy(session_id: str, active: Run, why: str) -> Refusal:
    return _precondition(
        "SESSION_BUSY",
        f"Session {session_id!r} is busy with run {active.id} ({active.status.name}); {why}. "
        "Wait for it to finish, cancel it, or create the run with the multitask strategy ENQUEUE, "
        "INTERRUPT or ROLLBACK.",
        {"run_id": active.id},
    )


def finish_segment(run: Run, segment: int, status: RunStatus, reason: str = "") -> Change | Refusal:
    """RUNNING `segment` → how it ended (`status`, one of SEGMENT_ENDINGS)."""
    if status not in SEGMENT_ENDINGS:
        raise ValueError(f"a segment cannot end a run {status.name}")
    if run.status is not RunStatus.RUNNING or run.segment_count != segment:
        return _superseded(run, segment)
    return Change(status, segment, reason)


def fail_stranded(run: Run, segment: int, reason: str) -> Change | Refusal:
    """QUEUED or RUNNING `segment` → FAILED, when its recoveries kept failing."""
    if not _segment_live(run, segment):
        return _superseded(run, segment)
    return Change(RunStatus.FAILED, segment, reason)


def cancel(run: Run, reason: str) -> Change | Refusal:
    """QUEUED, RUNNING or INTERRUPTED → CANCELLED."""
    if run.status.is_finished:
        return _precondition(
            "RUN_FINISHED",
            f"Run {run.id} is already {run.status.name}; only QUEUED, RUNNING or INTERRUPTED runs "
            "can be cancelled.",
        )
    return Change(RunStatus.CANCELLED, run.segment_count, reason)


def resume(run: Run) -> Change | Refusal:
    """INTERRUPTED with every interruption decided → QUEUED for the next segment."""
    if run.status is not RunStatus.INTERRUPTED:
        return _precondition(
            "RUN_NOT_RESUMABLE", f"Run {run.id} is {run.status.name}; only an INTERRUPTED run can be resumed."
        )
    if run.pending_interruptions:
        ids = ", ".join(i.id for i in run.pending_interruptions)
        return _precondition(
            "INTERRUPTIONS_PENDING",
            f"Run {run.id} still has undecided interruptions ({ids}). Approve or reject each "
            "with ApproveInterruption / RejectInterruption, then resume.",
        )
    return Change(RunStatus.QUEUED, run.segment_count + 1)


def already_decided(interruption: Interruption) -> Refusal:
    """The refusal of a decision that differs from the one recorded, which it describes."""
    recorded = f"{interruption.status.value} with always={str(interruption.always).lower()}"
    if interruption.message:
        recorded += " and a message"
    if interruption.approved_arguments_json:
        recorded += " and edited arguments"
    if interruption.expired:
        recorded += " (its approval expired)"
    return _precondition(
        "INTERRUPTION_ALREADY_DECIDED",
        f"Interruption {interruption.id} was already {recorded}; a decision cannot be changed. "
        "Repeating the recorded decision exactly is harmless.",
        {
            "status": interruption.status.value,
            "always": str(interruption.always).lower(),
            "message": interruption.message[:ECHOED_MESSAGE_LENGTH],
            "message_truncated": str(len(interruption.message) > ECHOED_MESSAGE_LENGTH).lower(),
        },
    )


def decide(
    run: Run,
    interruption_id: str,
    decision: InterruptionStatus,
    *,
    always: bool,
    message: str,
    arguments_json: str = "",
) -> Record | Keep | Refusal:
    """Approve or reject a pending interruption of the INTERRUPTED run's current segment (an
    approval with `arguments_json` runs the tool with them instead of the proposed ones).
    Repeating the recorded decision exactly (status, always, message and edited arguments) is
    kept, whoever repeats it; any other decision of a decided interruption is refused."""
    found = [i for i in run.interruptions if i.id == interruption_id]
    if not found:
        return Refusal(
            RefusalKind.NOT_FOUND,
            "INTERRUPTION_NOT_FOUND",
            f"Run {run.id} has no interruption {interruption_id!r}. "
            "List them with RunService.ListInterruptions.",
        )
    interruption = found[0]
    if interruption.status is not InterruptionStatus.PENDING:
        recorded = (
            interruption.status,
            interruption.always,
            interruption.message,
            interruption.approved_arguments_json,
        )
        if recorded == (decision, always, message, arguments_json):
            return Keep()
        return already_decided(interruption)
    if run.status is not RunStatus.INTERRUPTED or interruption.segment != run.segment_count:
        return _precondition(
            "RUN_NOT_INTERRUPTED",
            f"Run {run.id} is {run.status.name}; interruptions can only be decided while the run "
            "is INTERRUPTED on them.",
        )
    return Record(interruption)


def expire(run: Run, interruption_id: str, now: datetime) -> Record | Keep:
    """Reject a pending interruption of the INTERRUPTED run's current segment whose expire time
    has passed at `now`; anything else (decided meanwhile, expired already, the run moved on) is
    kept as it is."""
    due = [
        i
        for i in run.pending_interruptions
        if i.id == interruption_id and i.expire_time is not None and i.expire_time <= now
    ]
    if run.status is not RunStatus.INTERRUPTED or not due:
        return Keep()
    return Record(due[0])


def resume_on_expiry(run: Run) -> Change | Keep:
    """INTERRUPTED, asking to resume on expiry, with every interruption of its segment decided
    and one of them expired → QUEUED for the next segment; anything else is kept."""
    expired = any(i.expired for i in run.interruptions if i.segment == run.segment_count)
    if run.status is not RunStatus.INTERRUPTED or not run.approval.auto_resume or not expired:
        return Keep()
    if run.pending_interruptions:
        return Keep()
    return Change(RunStatus.QUEUED, run.segment_count + 1, "approvals expired")
