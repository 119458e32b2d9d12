"""Interruptions in PostgreSQL: storing those a segment paused on, and deciding one. The run
store calls these inside its transitions, under the run's row lock."""

from __future__ import annotations

from collections.abc import Sequence

from timestep.domain import Interruption, InterruptionStatus, NewInterruption, Run, RunStatus
from timestep.errors import FailedPreconditionError, NotFoundError
from timestep.store.rows import Connection, interruption_from_row, new_id

# How much of a recorded rejection message an error repeats (trailers are small).
ECHOED_MESSAGE_LENGTH = 1024


def already_decided(interruption: Interruption) -> FailedPreconditionError:
    """The refusal of a decision that differs from the one recorded, which it describes."""
    recorded = f"{interruption.status.value} with always={str(interruption.always).lower()}"
    if interruption.message:
        recorded += " and a message"
    return FailedPreconditionError(
        f"Interruption {interruption.id} was already {recorded}; a decision cannot be changed. "
        "Repeating the recorded decision exactly is harmless.",
        reason="INTERRUPTION_ALREADY_DECIDED",
        metadata={
            "status": interruption.status.value,
            "always": str(interruption.always).lower(),
            "message": interruption.message[:ECHOED_MESSAGE_LENGTH],
            "message_truncated": str(len(interruption.message) > ECHOED_MESSAGE_LENGTH).lower(),
        },
    )


async def decide(
    connection: Connection,
    run: Run,
    interruption_id: str,
    decision: InterruptionStatus,
    *,
    always: bool,
    message: str,
) -> tuple[Interruption, bool]:
    """Record an approval or rejection of one of `run`'s interruptions (`run` read under its
    lock); returns the interruption and whether it changed (False: the recorded decision,
    repeated exactly). Any other decision of a decided interruption is FAILED_PRECONDITION."""
    run_id = run.id
    found = [i for i in run.interruptions if i.id == interruption_id]
    if not found:
        raise NotFoundError(
            f"Run {run_id} has no interruption {interruption_id!r}. "
            "List them with RunService.ListInterruptions.",
            reason="INTERRUPTION_NOT_FOUND",
        )
    interruption = found[0]
    if interruption.status is not InterruptionStatus.PENDING:
        recorded = (interruption.status, interruption.always, interruption.message)
        if recorded == (decision, always, message):
            return interruption, False
        raise already_decided(interruption)
    if run.status is not RunStatus.INTERRUPTED or interruption.segment != run.segment_count:
        raise FailedPreconditionError(
            f"Run {run_id} is {run.status.name}; interruptions can only be decided while the run "
            "is INTERRUPTED on them.",
            reason="RUN_NOT_INTERRUPTED",
        )
    row = await connection.fetchrow(
        """UPDATE interruptions
           SET status = $2, always = $3, message = $4, decide_time = clock_timestamp()
           WHERE id = $1 RETURNING *""",
        interruption_id,
        decision.value,
        always,
        message,
    )
    assert row is not None, "the interruption was read under the run's lock"
    return interruption_from_row(row), True


async def insert_interruptions(
    connection: Connection, run_id: str, segment: int, interruptions: Sequence[NewInterruption]
) -> list[Interruption]:
    inserted = []
    for item in interruptions:
        row = await connection.fetchrow(
            """INSERT INTO interruptions (id, run_id, segment, agent, tool_name, call_id, arguments_json,
                                          status, always, message, decide_time)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                       CASE WHEN $8 = 'pending' THEN NULL ELSE clock_timestamp() END)
               RETURNING *""",
            new_id("int"),
            run_id,
            segment,
            item.agent,
            item.tool_name,
            item.call_id,
            item.arguments_json,
            item.status.value,
            item.always,
            item.message,
        )
        assert row is not None, "INSERT … RETURNING returns the row"
        inserted.append(interruption_from_row(row))
    return inserted
