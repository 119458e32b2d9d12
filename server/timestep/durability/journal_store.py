"""The step journal in PostgreSQL (`step_journal`, `tool_invocations`): the model and tool
calls a segment completed, so that a recovered segment replays them instead of calling again
(see `timestep.durability.steps`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from timestep.domain import RunStatus
from timestep.store.retry import PATIENCE_S, retried, retrying


@dataclass(frozen=True)
class RecordedStep:
    """A completed model or tool call in the step journal."""

    name: str  # "model:<model name>" or "tool:<tool name>"
    entry: dict[str, Any]  # its result, as JSON (see timestep.durability.journal)


class JournalStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @retried
    async def recorded_steps(self, run_id: str, segment: int) -> dict[str, RecordedStep]:
        """The completed calls a segment recorded so far, by step ("1", "4.2")."""
        rows = await self._pool.fetch(
            "SELECT step, name, entry FROM step_journal WHERE run_id = $1 AND segment = $2",
            run_id,
            segment,
        )
        return {row["step"]: RecordedStep(row["name"], row["entry"]) for row in rows}

    @retried
    async def record_step(self, run_id: str, segment: int, step: str, recorded: RecordedStep) -> RecordedStep:
        """Record a completed call; returns what is recorded for it, which is another
        execution's result if that one recorded it first."""
        inserted = await self._pool.fetchval(
            """INSERT INTO step_journal (run_id, segment, step, name, entry)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true""",
            run_id,
            segment,
            step,
            recorded.name,
            recorded.entry,
        )
        if inserted:
            return recorded
        row = await self._pool.fetchrow(
            "SELECT name, entry FROM step_journal WHERE run_id = $1 AND segment = $2 AND step = $3",
            run_id,
            segment,
            step,
        )
        assert row is not None, "the conflicting step is committed"
        return RecordedStep(row["name"], row["entry"])

    async def segment_superseded(self, run_id: str, segment: int, *, patience_s: float = PATIENCE_S) -> bool:
        """Whether the run is no longer RUNNING `segment` (it was cancelled, possibly through
        another replica), so the segment's calls must stop. Waits up to `patience_s` for the
        database (then DatabaseUnavailableError)."""
        row = await retrying(
            lambda: self._pool.fetchrow("SELECT status, segment_count FROM runs WHERE id = $1", run_id),
            what="segment_superseded",
            pool=self._pool,
            patience_s=patience_s,
        )
        return row is None or row["status"] != RunStatus.RUNNING.value or row["segment_count"] != segment

    @retried
    async def mark_tool_started(
        self, run_id: str, segment: int, call_id: str, tool_name: str, executor_id: str, attempt: str
    ) -> bool:
        """Record that a tool call is starting; False if it had started before (a replay).

        `attempt` names this execution of the call: a retry of this write after its reply was
        lost finds its own marker and still returns True."""
        marker = await self._pool.fetchval(
            """WITH inserted AS (
                   INSERT INTO tool_invocations (run_id, segment, call_id, tool_name, executor_id, attempt)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING attempt)
               SELECT attempt FROM inserted
               UNION ALL
               SELECT attempt FROM tool_invocations WHERE run_id = $1 AND segment = $2 AND call_id = $3
               LIMIT 1""",
            run_id,
            segment,
            call_id,
            tool_name,
            executor_id,
            attempt,
        )
        return bool(marker == attempt)
