"""Interruptions in PostgreSQL: storing those a segment paused on (each expiring after the run's
approval timeout, if it has one), and recording a decision.
The run store calls these inside its transitions, under the run's row lock."""

from __future__ import annotations

from collections.abc import Sequence

from timestep.domain import Decision, Interruption, NewInterruption
from timestep.store.rows import Connection, interruption_from_row, new_id


async def record_decision(
    connection: Connection, interruption_id: str, decision: Decision, *, expired: bool = False
) -> Interruption:
    """Write the decision of a pending interruption (read, and the decision checked by
    `timestep.runs.transitions`, under the run's lock)."""
    row = await connection.fetchrow(
        """UPDATE interruptions
           SET status = $2, always = $3, message = $4, approved_arguments_json = $5, decided_by = $6,
               expired = $7, decide_time = clock_timestamp()
           WHERE id = $1 RETURNING *""",
        interruption_id,
        decision.status.value,
        decision.always,
        decision.message,
        decision.arguments_json,
        decision.decided_by,
        expired,
    )
    assert row is not None, "the interruption was read under the run's lock"
    return interruption_from_row(row)


async def insert_interruptions(
    connection: Connection, run_id: str, segment: int, interruptions: Sequence[NewInterruption]
) -> list[Interruption]:
    inserted = []
    for item in interruptions:
        row = await connection.fetchrow(
            """INSERT INTO interruptions (id, run_id, segment, agent, tool_name, call_id, arguments_json,
                                          status, always, message, decide_time, expire_time)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                       CASE WHEN $8 = 'pending' THEN NULL ELSE clock_timestamp() END,
                       CASE WHEN $8 = 'pending'
                            THEN clock_timestamp() + (SELECT approval_timeout FROM runs WHERE id = $2) END)
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
