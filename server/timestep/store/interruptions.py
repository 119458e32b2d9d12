"""Interruptions in PostgreSQL: storing those of an imported run (in the import's transaction).
A segment's interruptions and decisions are written with their transitions
(`timestep.store.changes`)."""

from __future__ import annotations

from collections.abc import Sequence

from timestep.domain import Interruption, NewInterruption
from timestep.store.rows import Connection, interruption_from_row, new_id


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
