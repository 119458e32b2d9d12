"""Health follows the database: NOT_SERVING (overall and per service) while it is unreachable,
SERVING again by itself once it answers, so load balancers send calls elsewhere meanwhile.

Calls that reach the service during an outage fail with UNAVAILABLE and a RetryInfo (see
`timestep.api.errors`); run segments in flight wait for the database (`timestep.store.retry`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import asyncpg
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from timestep.api.grpc.server import set_health
from timestep.observability.interceptor import Drain
from timestep.periodic import Periodic

log = logging.getLogger(__name__)

# How often the database is probed, and how long a probe may take before it counts as failed.
PROBE_PERIOD_S: Final = 1.0
PROBE_TIMEOUT_S: Final = 2.0


class DatabaseMonitor:
    def __init__(self, pool: asyncpg.Pool, health: health_aio.HealthServicer, drain: Drain) -> None:
        self._pool = pool
        self._health = health
        self._drain = drain
        self.reachable = True
        self._probes = Periodic("timestep database monitor", PROBE_PERIOD_S, self.probe, at_once=True)

    def start(self) -> None:
        self._probes.start()

    async def stop(self) -> None:
        await self._probes.stop()

    async def probe(self) -> None:
        """Probe the database once and report the result through health checking."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await self._pool.fetchval("SELECT 1")
            reachable = True
        except Exception as error:
            reachable = False
            if self.reachable:
                log.warning("database probe failed: %s: %s", type(error).__name__, error)
            # Its connections died with it: none of them is handed out again.
            await self._pool.expire_connections()
        if reachable == self.reachable:
            return
        self.reachable = reachable
        if not reachable:
            log.warning("the database is unreachable; health is NOT_SERVING until it answers again")
            await set_health(self._health, health_pb2.HealthCheckResponse.NOT_SERVING)
        elif not self._drain.draining:
            log.warning("the database answers again; health is SERVING")
            await set_health(self._health, health_pb2.HealthCheckResponse.SERVING)
