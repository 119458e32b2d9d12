"""Request slots of model providers with a request limit, shared by every replica on the
database (migration 0010: `timestep_take_request_slot`)."""

from __future__ import annotations

import asyncpg


class RequestSlots:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def take(self, provider: str, requests: int, period_s: float) -> float:
        """Take one of `provider`'s `requests` slots per `period_s` seconds: 0 when taken, else
        the seconds until one frees up. One statement (one round trip)."""
        wait: float = await self._pool.fetchval(
            "SELECT timestep_take_request_slot($1, $2, $3)", provider, requests, period_s
        )
        return wait
