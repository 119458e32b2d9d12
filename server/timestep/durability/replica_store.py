"""Replicas and stranded segments in PostgreSQL: each replica's heartbeat (`replicas`), the
claims on dead replicas' workflows (see `timestep.durability.replicas`), and the claims on run
segments left without a live workflow (`segment_recoveries`, see `timestep.durability.sweeper`)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from timestep.store.session_turns import MAY_START


@dataclass(frozen=True)
class StrandedSegment:
    """A run segment without a live workflow, claimed for recovery (see `claim_stranded`)."""

    run_id: str
    segment: int
    queue_name: str
    # The workflow's DBOS status ("ERROR", "CANCELLED", ...); None: it was never started.
    workflow_status: str | None
    # Recoveries of this segment so far, this one included.
    attempts: int


class ReplicaStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def heartbeat(self, executor_id: str) -> None:
        await self._pool.execute(
            """INSERT INTO replicas (executor_id) VALUES ($1)
               ON CONFLICT (executor_id) DO UPDATE
               SET heartbeat_time = clock_timestamp(), recovered_by = NULL""",
            executor_id,
        )

    async def claim_dead_replicas(self, claimer: str, timeout_s: float) -> list[str]:
        """Replicas silent for longer than `timeout_s`, claimed for recovery by `claimer`: those
        nobody claimed, and those whose claimer died too (recovering again is harmless: what was
        recovered already belongs to the claimer)."""
        rows = await self._pool.fetch(
            """UPDATE replicas AS dead SET recovered_by = $1
               WHERE dead.executor_id <> $1
                 AND dead.heartbeat_time < clock_timestamp() - make_interval(secs => $2)
                 AND (dead.recovered_by IS NULL OR dead.recovered_by <> $1 AND NOT EXISTS (
                        SELECT 1 FROM replicas AS claimer
                        WHERE claimer.executor_id = dead.recovered_by
                          AND claimer.heartbeat_time >= clock_timestamp() - make_interval(secs => $2)))
               RETURNING dead.executor_id""",
            claimer,
            timeout_s,
        )
        return [row["executor_id"] for row in rows]

    async def claim_stranded(self, grace_s: float) -> list[StrandedSegment]:
        """Runs QUEUED or RUNNING whose segment workflow (DBOS's `workflow_status`) is not live
        (PENDING, ENQUEUED or DELAYED) and has not been for `grace_s` (it ended in error, was
        cancelled, finished without finishing the run, or was never started), each claimed for
        one recovery: its attempt is counted here, and no other claim (by any replica) takes it
        again within `grace_s`."""
        rows = await self._pool.fetch(
            f"""WITH stranded AS (
                   SELECT r.id, r.segment_count, r.queue_name, w.status AS workflow_status
                   FROM runs r
                   LEFT JOIN dbos.workflow_status w
                          ON w.workflow_uuid = r.id || '/segment-' || r.segment_count
                   WHERE r.status IN ('queued', 'running') AND {MAY_START}
                     AND CASE WHEN w.workflow_uuid IS NULL
                              THEN r.update_time < clock_timestamp() - make_interval(secs => $1)
                              ELSE w.status NOT IN ('PENDING', 'ENQUEUED', 'DELAYED')
                                   AND w.updated_at < extract(epoch FROM clock_timestamp()) * 1000 - $1 * 1000
                         END),
               claimed AS (
                   INSERT INTO segment_recoveries AS c (run_id, segment, attempts)
                   SELECT id, segment_count, 1 FROM stranded
                   ON CONFLICT (run_id, segment) DO UPDATE
                   SET attempts = c.attempts + 1, recover_time = clock_timestamp()
                   WHERE c.recover_time < clock_timestamp() - make_interval(secs => $1)
                   RETURNING c.run_id, c.segment, c.attempts)
               SELECT s.id, s.segment_count, s.queue_name, s.workflow_status, c.attempts
               FROM stranded s JOIN claimed c ON c.run_id = s.id AND c.segment = s.segment_count""",
            grace_s,
        )
        return [
            StrandedSegment(
                row["id"], row["segment_count"], row["queue_name"], row["workflow_status"], row["attempts"]
            )
            for row in rows
        ]
