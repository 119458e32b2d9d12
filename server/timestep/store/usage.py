"""Model usage in PostgreSQL: each segment's usage and model calls (written in the segment's
finishing transaction) and summaries over model calls for UsageService.GetUsage."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from timestep.domain import ModelCall, Usage, UsageFilter, UsageGroup, UsageSummary
from timestep.scope import Scope
from timestep.store.rows import USAGE_COLUMNS, Connection, usage_from_row


async def record_segment_usage(
    connection: Connection,
    run_id: str,
    segment: int,
    usage: Usage,
    total: Usage,
    calls: Sequence[ModelCall],
) -> None:
    """Store a segment's usage and model calls and set the run's totals (inside the caller's
    transaction)."""
    await connection.execute(
        f"""INSERT INTO run_usage (run_id, segment, {", ".join(USAGE_COLUMNS)})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        run_id,
        segment,
        *usage.values(),
    )
    if calls:
        await connection.executemany(
            f"""INSERT INTO model_calls (run_id, segment, ordinal, agent, model, {", ".join(USAGE_COLUMNS)},
                                         priced, call_time)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)""",
            [
                (
                    run_id,
                    segment,
                    ordinal,
                    call.agent,
                    call.model,
                    *call.usage.values(),
                    call.priced,
                    call.time,
                )
                for ordinal, call in enumerate(calls, start=1)
            ],
        )
    assignments = ", ".join(
        f"usage_{column} = ${number}" for number, column in enumerate(USAGE_COLUMNS, start=2)
    )
    await connection.execute(f"UPDATE runs SET {assignments} WHERE id = $1", run_id, *total.values())


_SUMS = ", ".join(
    f"coalesce(sum({column}), 0){'::float8' if column == 'cost_usd' else '::bigint'} AS {column}"
    for column in USAGE_COLUMNS
)


class UsageStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def summarize(self, scope: Scope, usage_filter: UsageFilter) -> UsageSummary:
        """Usage of the model calls of `scope`'s runs made in [start, end), by agent and model."""
        where = """WHERE ($1::timestamptz IS NULL OR call_time >= $1)
                     AND ($2::timestamptz IS NULL OR call_time < $2)
                     AND ($3 = '' OR agent = $3)
                     AND ($4 = '' OR model = $4)
                     AND ($5::text IS NULL OR EXISTS (
                            SELECT 1 FROM runs WHERE runs.id = model_calls.run_id AND runs.tenant = $5))"""
        args = (
            usage_filter.start,
            usage_filter.end,
            usage_filter.agent,
            usage_filter.model,
            scope.only,
        )
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                f"""SELECT agent, model, count(DISTINCT run_id) AS run_count, {_SUMS}
                    FROM model_calls {where} GROUP BY agent, model ORDER BY agent, model""",
                *args,
            )
            total = await connection.fetchrow(
                f"SELECT count(DISTINCT run_id) AS run_count, {_SUMS} FROM model_calls {where}", *args
            )
        assert total is not None, "an aggregate without GROUP BY returns one row"
        groups = [
            UsageGroup(row["agent"], row["model"], usage_from_row(row), row["run_count"]) for row in rows
        ]
        return UsageSummary(usage_from_row(total), total["run_count"], groups)
