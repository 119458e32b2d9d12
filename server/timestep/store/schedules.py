"""What the service keeps of schedules besides the durable engine's own tables: the firings
they skipped (`schedule_misses`), and a per-tenant lock for counting a tenant's schedules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class Misses:
    count: int
    last_time: datetime | None


NO_MISSES = Misses(0, None)


class ScheduleStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def tenant_lock(self, tenant: str) -> AsyncIterator[None]:
        """Held by one caller at a time per tenant, across replicas: creating a schedule counts
        the tenant's schedules and adds one, and two creations must not both count the same."""
        key = f"timestep.schedules/{tenant}"
        async with self._pool.acquire() as connection:
            await connection.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
            try:
                yield
            finally:
                await connection.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)

    async def record_miss(self, tenant: str, schedule_id: str, scheduled_time: datetime) -> bool:
        """Count the firing at `scheduled_time` as missed; False if it was counted already (a
        replayed firing) or a later one was."""
        status: str = await self._pool.execute(
            """INSERT INTO schedule_misses AS m (tenant, schedule_id, missed_fires, last_missed_time)
               VALUES ($1, $2, 1, $3)
               ON CONFLICT (tenant, schedule_id) DO UPDATE
               SET missed_fires = m.missed_fires + 1, last_missed_time = EXCLUDED.last_missed_time
               WHERE m.last_missed_time < EXCLUDED.last_missed_time""",
            tenant,
            schedule_id,
            scheduled_time,
        )
        return status.endswith(" 1")

    async def misses(self, tenant: str, schedule_ids: Sequence[str]) -> dict[str, Misses]:
        rows = await self._pool.fetch(
            """SELECT schedule_id, missed_fires, last_missed_time FROM schedule_misses
               WHERE tenant = $1 AND schedule_id = ANY($2::text[])""",
            tenant,
            list(schedule_ids),
        )
        return {row["schedule_id"]: Misses(row["missed_fires"], row["last_missed_time"]) for row in rows}

    async def forget_misses(self, tenant: str, schedule_id: str) -> None:
        await self._pool.execute(
            "DELETE FROM schedule_misses WHERE tenant = $1 AND schedule_id = $2", tenant, schedule_id
        )
