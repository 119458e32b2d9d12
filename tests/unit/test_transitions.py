"""The run state machine (timestep.runs.transitions), every status against every command,
without a database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from timestep.domain import (
    ApprovalPolicy,
    Interruption,
    InterruptionStatus,
    MultitaskStrategy,
    Run,
    RunStatus,
    Usage,
)
from timestep.errors import FailedPreconditionError, NotFoundError
from timestep.runs import transitions
from timestep.runs.transitions import Change, Keep, Record, Refusal

# P: paused, i.e. INTERRUPTED.
Q, R, P, C, F, X = (
    RunStatus.QUEUED,
    RunStatus.RUNNING,
    RunStatus.INTERRUPTED,
    RunStatus.COMPLETED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
)
SEGMENT = 2
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def interruption(
    id: str = "int_1",
    *,
    segment: int = SEGMENT,
    status: InterruptionStatus = InterruptionStatus.PENDING,
    always: bool = False,
    message: str = "",
    expire_time: datetime | None = None,
) -> Interruption:
    return Interruption(
        id=id,
        run_id="run_1",
        segment=segment,
        agent="a",
        tool_name="t",
        call_id="c",
        arguments_json="{}",
        status=status,
        always=always,
        message=message,
        create_time=NOW,
        decide_time=None if status is InterruptionStatus.PENDING else NOW,
        expire_time=expire_time,
    )


def run(status: RunStatus, *interruptions: Interruption, auto_resume: bool = False) -> Run:
    return Run(
        id="run_1",
        agent="a",
        current_agent="a",
        status=status,
        session_id="",
        model="",
        final_output="",
        error=None,
        metadata={},
        request_id="",
        usage=Usage(),
        segment_count=SEGMENT,
        last_sequence=0,
        create_time=NOW,
        update_time=NOW,
        interruptions=list(interruptions),
        approval=ApprovalPolicy(timedelta(seconds=1), auto_resume=auto_resume),
    )


APPROVED = interruption(status=InterruptionStatus.APPROVED, always=True, message="ok")
PENDING = interruption()
PENDING_EARLIER = interruption(segment=SEGMENT - 1)
DUE = interruption(expire_time=NOW - timedelta(seconds=1))
NOT_DUE = interruption("int_2", expire_time=NOW + timedelta(seconds=1))
NEVER_DUE = interruption("int_3")
EXPIRED = replace(
    interruption(status=InterruptionStatus.REJECTED, message="late", expire_time=NOW), expired=True
)
Command = Callable[[RunStatus], object]


def _decide(
    *interruptions: Interruption, id: str = "int_1", always: bool = True, message: str = "ok"
) -> Command:
    return lambda status: transitions.decide(
        run(status, *interruptions), id, InterruptionStatus.APPROVED, always=always, message=message
    )


def _expire(*interruptions: Interruption, id: str = "int_1") -> Command:
    return lambda status: transitions.expire(run(status, *interruptions), id, NOW)


def _resume_on_expiry(*interruptions: Interruption, auto_resume: bool = True) -> Command:
    return lambda status: transitions.resume_on_expiry(run(status, *interruptions, auto_resume=auto_resume))


COMMANDS: dict[str, Command] = {
    "begin": lambda s: transitions.begin_segment(run(s), SEGMENT),
    "begin another segment": lambda s: transitions.begin_segment(run(s), SEGMENT - 1),
    "begin, a run ahead in the session": lambda s: transitions.begin_segment(run(s), SEGMENT, ahead=run(Q)),
    "finish": lambda s: transitions.finish_segment(run(s), SEGMENT, C),
    "finish another segment": lambda s: transitions.finish_segment(run(s), SEGMENT + 1, C),
    "fail stranded": lambda s: transitions.fail_stranded(run(s), SEGMENT, "stuck"),
    "fail stranded another segment": lambda s: transitions.fail_stranded(run(s), SEGMENT - 1, "stuck"),
    "cancel": lambda s: transitions.cancel(run(s), "bye"),
    "resume, all decided": lambda s: transitions.resume(run(s, APPROVED)),
    "resume, one pending": lambda s: transitions.resume(run(s, APPROVED, interruption("int_2"))),
    "resume, pending of an earlier segment": lambda s: transitions.resume(run(s, PENDING_EARLIER)),
    "decide pending": _decide(PENDING),
    "decide pending of an earlier segment": _decide(PENDING_EARLIER),
    "decide again, identical": _decide(APPROVED),
    "decide again, other always": _decide(APPROVED, always=False),
    "decide again, other message": _decide(APPROVED, message="other"),
    "decide unknown": _decide(APPROVED, id="int_9"),
    "expire due": _expire(DUE),
    "expire not yet due": _expire(NOT_DUE, id="int_2"),
    "expire never due": _expire(NEVER_DUE, id="int_3"),
    "expire decided": _expire(APPROVED),
    "expire due of an earlier segment": _expire(replace(DUE, segment=SEGMENT - 1)),
    "resume on expiry": _resume_on_expiry(EXPIRED),
    "resume on expiry, not asked": _resume_on_expiry(EXPIRED, auto_resume=False),
    "resume on expiry, one pending": _resume_on_expiry(EXPIRED, NOT_DUE),
    "resume on expiry, none expired": _resume_on_expiry(APPROVED),
}

SUPERSEDED = "SEGMENT_SUPERSEDED"
NOT_RESUMABLE = "RUN_NOT_RESUMABLE"
NOT_INTERRUPTED = "RUN_NOT_INTERRUPTED"
ALREADY = "INTERRUPTION_ALREADY_DECIDED"

# Per command, the outcome for QUEUED, RUNNING, INTERRUPTED, COMPLETED, FAILED, CANCELLED:
# (status, segment) for a change, "keep", "record", or the refusal's reason.
TABLE: dict[str, tuple[object, ...]] = {
    "begin": ((R, 2), "keep", SUPERSEDED, SUPERSEDED, SUPERSEDED, SUPERSEDED),
    "begin another segment": (SUPERSEDED,) * 6,
    "begin, a run ahead in the session": ("SESSION_BUSY", "keep") + (SUPERSEDED,) * 4,
    "finish": (SUPERSEDED, (C, 2), SUPERSEDED, SUPERSEDED, SUPERSEDED, SUPERSEDED),
    "finish another segment": (SUPERSEDED,) * 6,
    "fail stranded": ((F, 2), (F, 2), SUPERSEDED, SUPERSEDED, SUPERSEDED, SUPERSEDED),
    "fail stranded another segment": (SUPERSEDED,) * 6,
    "cancel": ((X, 2), (X, 2), (X, 2), "RUN_FINISHED", "RUN_FINISHED", "RUN_FINISHED"),
    "resume, all decided": (
        NOT_RESUMABLE,
        NOT_RESUMABLE,
        (Q, 3),
        NOT_RESUMABLE,
        NOT_RESUMABLE,
        NOT_RESUMABLE,
    ),
    "resume, one pending": (NOT_RESUMABLE, NOT_RESUMABLE, "INTERRUPTIONS_PENDING") + (NOT_RESUMABLE,) * 3,
    "resume, pending of an earlier segment": (NOT_RESUMABLE, NOT_RESUMABLE, (Q, 3)) + (NOT_RESUMABLE,) * 3,
    "decide pending": (NOT_INTERRUPTED, NOT_INTERRUPTED, "record") + (NOT_INTERRUPTED,) * 3,
    "decide pending of an earlier segment": (NOT_INTERRUPTED,) * 6,
    "decide again, identical": ("keep",) * 6,
    "decide again, other always": (ALREADY,) * 6,
    "decide again, other message": (ALREADY,) * 6,
    "decide unknown": ("INTERRUPTION_NOT_FOUND",) * 6,
    "expire due": ("keep", "keep", "record") + ("keep",) * 3,
    "expire not yet due": ("keep",) * 6,
    "expire never due": ("keep",) * 6,
    "expire decided": ("keep",) * 6,
    "expire due of an earlier segment": ("keep",) * 6,
    "resume on expiry": ("keep", "keep", (Q, 3)) + ("keep",) * 3,
    "resume on expiry, not asked": ("keep",) * 6,
    "resume on expiry, one pending": ("keep",) * 6,
    "resume on expiry, none expired": ("keep",) * 6,
}
STATUSES = (Q, R, P, C, F, X)


def test_the_table_covers_every_command_and_status() -> None:
    assert TABLE.keys() == COMMANDS.keys()
    assert all(len(row) == len(RunStatus) for row in TABLE.values())
    assert set(STATUSES) == set(RunStatus)


def _summary(outcome: object) -> object:
    if isinstance(outcome, Change):
        return (outcome.status, outcome.segment)
    if isinstance(outcome, Keep):
        return "keep"
    if isinstance(outcome, Record):
        return "record"
    assert isinstance(outcome, Refusal), outcome
    return outcome.reason


@pytest.mark.parametrize(
    ("command", "status", "expected"),
    [(name, status, TABLE[name][i]) for name in COMMANDS for i, status in enumerate(STATUSES)],
    ids=[f"{name} when {status.name}" for name in COMMANDS for status in STATUSES],
)
def test_transition(command: str, status: RunStatus, expected: object) -> None:
    assert _summary(COMMANDS[command](status)) == expected


def test_a_change_announces_its_status_and_reason() -> None:
    change = transitions.cancel(run(P), "The user closed the chat.")
    assert isinstance(change, Change)
    assert change.event.payload == {"status": "cancelled", "reason": "The user closed the chat."}


def test_a_segment_ends_only_completed_failed_or_interrupted() -> None:
    for status in (P, F):
        assert transitions.finish_segment(run(R), SEGMENT, status, "why") == Change(status, SEGMENT, "why")
    for status in (Q, R, X):
        with pytest.raises(ValueError, match="cannot end a run"):
            transitions.finish_segment(run(R), SEGMENT, status)


def test_decide_records_the_pending_interruption() -> None:
    assert transitions.decide(
        run(P, APPROVED, interruption("int_2")),
        "int_2",
        InterruptionStatus.REJECTED,
        always=False,
        message="",
    ) == Record(interruption("int_2"))


def _error(outcome: object) -> Exception:
    assert isinstance(outcome, Refusal), outcome
    return outcome.error()


def test_refusals_become_the_errors_callers_see() -> None:
    finished = _error(transitions.cancel(run(C), ""))
    assert isinstance(finished, FailedPreconditionError)
    assert str(finished) == (
        "Run run_1 is already COMPLETED; only QUEUED, RUNNING or INTERRUPTED runs can be cancelled."
    )
    pending = _error(transitions.resume(run(P, PENDING, interruption("int_2"))))
    assert str(pending) == (
        "Run run_1 still has undecided interruptions (int_1, int_2). Approve or reject each "
        "with ApproveInterruption / RejectInterruption, then resume."
    )
    assert (
        str(_error(transitions.resume(run(R))))
        == "Run run_1 is RUNNING; only an INTERRUPTED run can be resumed."
    )
    superseded = _error(transitions.finish_segment(run(X), SEGMENT, C))
    assert str(superseded) == "Run run_1 is CANCELLED in segment 2; segment 2 can no longer finish it."
    missing = _error(_decide(APPROVED, id="int_9")(P))
    assert isinstance(missing, NotFoundError)
    assert missing.reason == "INTERRUPTION_NOT_FOUND"
    assert (
        str(missing) == "Run run_1 has no interruption 'int_9'. List them with RunService.ListInterruptions."
    )
    not_interrupted = _error(_decide(PENDING)(Q))
    assert str(not_interrupted) == (
        "Run run_1 is QUEUED; interruptions can only be decided while the run is INTERRUPTED on them."
    )


def test_a_changed_decision_is_refused_with_the_recorded_one() -> None:
    recorded = interruption(status=InterruptionStatus.REJECTED, message="x" * 1025)
    error = _error(
        transitions.decide(run(P, recorded), "int_1", InterruptionStatus.APPROVED, always=False, message="")
    )
    assert isinstance(error, FailedPreconditionError)
    assert str(error) == (
        "Interruption int_1 was already rejected with always=false and a message; a decision cannot "
        "be changed. Repeating the recorded decision exactly is harmless."
    )
    assert error.metadata == {
        "status": "rejected",
        "always": "false",
        "message": "x" * 1024,
        "message_truncated": "true",
    }


# A new run's admission to a session with one run ahead of it, per multitask strategy, for that
# run's status (QUEUED, RUNNING, INTERRUPTED, COMPLETED, FAILED, CANCELLED): "start" at once,
# "wait" behind it, "cancel" it (and start), "rollback" (cancel it, remove its items, start), or
# the refusal's reason.
ADMISSION: dict[MultitaskStrategy, tuple[str, ...]] = {
    MultitaskStrategy.REJECT: ("SESSION_BUSY",) * 3 + ("start",) * 3,
    MultitaskStrategy.ENQUEUE: ("wait",) * 3 + ("start",) * 3,
    MultitaskStrategy.INTERRUPT: ("cancel",) * 3 + ("start",) * 3,
    MultitaskStrategy.ROLLBACK: ("rollback",) * 3 + ("start",) * 3,
}


def _admission(outcome: object) -> str:
    if isinstance(outcome, Refusal):
        return outcome.reason
    assert isinstance(outcome, transitions.Admitted), outcome
    if outcome.waits_for:
        return "wait"
    if outcome.cancel:
        assert [change for _, change in outcome.cancel] == [Change(X, SEGMENT, outcome.cancel[0][1].reason)]
        return "rollback" if outcome.rollback else "cancel"
    return "start"


@pytest.mark.parametrize(
    ("strategy", "status", "expected"),
    [(s, status, ADMISSION[s][i]) for s in MultitaskStrategy for i, status in enumerate(STATUSES)],
    ids=[f"{s.name} behind {status.name}" for s in MultitaskStrategy for status in STATUSES],
)
def test_admission(strategy: MultitaskStrategy, status: RunStatus, expected: str) -> None:
    assert _admission(transitions.admit("run_new", "s1", [run(status)], strategy)) == expected


def test_an_enqueued_run_waits_for_the_last_run_ahead_and_interrupt_cancels_them_all() -> None:
    ahead = [replace(run(P), id="run_a"), replace(run(C), id="run_b"), replace(run(Q), id="run_c")]
    waiting = transitions.admit("run_new", "s1", ahead, MultitaskStrategy.ENQUEUE)
    assert isinstance(waiting, transitions.Admitted)
    assert (waiting.waits_for, waiting.reason) == ("run_c", "waiting for run run_c")
    interrupting = transitions.admit("run_new", "s1", ahead, MultitaskStrategy.INTERRUPT)
    assert isinstance(interrupting, transitions.Admitted)
    assert [r.id for r, _ in interrupting.cancel] == ["run_a", "run_c"]
    assert interrupting.cancel[0][1].reason == "Interrupted by run run_new (multitask strategy INTERRUPT)."
    refused = _error(transitions.admit("run_new", "s1", ahead, MultitaskStrategy.REJECT))
    assert isinstance(refused, FailedPreconditionError)
    assert refused.reason == "SESSION_BUSY"
    assert refused.metadata == {"run_id": "run_a"}
    assert str(refused).startswith("Session 's1' is busy with run run_a (INTERRUPTED)")


def test_a_resume_on_expiry_announces_it() -> None:
    change = transitions.resume_on_expiry(run(P, EXPIRED, auto_resume=True))
    assert isinstance(change, Change)
    assert change.event.payload == {"status": "queued", "reason": "approvals expired"}


def test_an_edit_is_part_of_the_decision() -> None:
    edited = replace(APPROVED, approved_arguments_json='{"a": 1}')
    assert isinstance(
        transitions.decide(run(P, edited), "int_1", InterruptionStatus.APPROVED, always=True, message="ok"),
        Refusal,
    )
    repeated = transitions.decide(
        run(P, edited),
        "int_1",
        InterruptionStatus.APPROVED,
        always=True,
        message="ok",
        arguments_json='{"a": 1}',
    )
    assert repeated == Keep()
