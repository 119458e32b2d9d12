"""Wiring: database → store → runtime → orchestration → gRPC server, and an orderly shutdown."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg
import grpc

from timestep.api.server import build_server
from timestep.runs.events import EventBus
from timestep.runs.orchestrator import RunOrchestrator
from timestep.runs.segments import SegmentExecutor
from timestep.runtime.providers import ModelConfig
from timestep.runtime.registry import DEFAULT_AGENTS, AgentRegistry, load_agents
from timestep.runtime.runner import DEFAULT_MAX_TURNS
from timestep.store.database import open_pool, redact, resolve_database
from timestep.store.runs import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    agents: str = DEFAULT_AGENTS
    # None: PG_CONNECTION_URI, else localhost:5432, else embedded PostgreSQL.
    database_url: str | None = None
    max_turns: int = DEFAULT_MAX_TURNS


class TimestepService:
    """A running service. Create with `await TimestepService.start(config)`."""

    def __init__(
        self, pool: asyncpg.Pool, orchestrator: RunOrchestrator, server: grpc.aio.Server, port: int
    ) -> None:
        self.pool = pool
        self.orchestrator = orchestrator
        self.server = server
        self.port = port

    @classmethod
    async def start(
        cls,
        config: ServiceConfig,
        *,
        registry: AgentRegistry | None = None,
        model_config: ModelConfig | None = None,
    ) -> TimestepService:
        registry = registry or load_agents(config.agents)
        dsn = config.database_url
        if dsn is None:
            target = await resolve_database()
            log.info("using %s database %s", target.source, redact(target.dsn))
            dsn = target.dsn
        pool = await open_pool(dsn)
        store = RunStore(pool)
        bus = EventBus()
        executor = SegmentExecutor(
            store, bus, registry, pool, model_config or ModelConfig.from_env(), max_turns=config.max_turns
        )
        orchestrator = RunOrchestrator(store, bus, registry, executor)
        await orchestrator.recover()
        server, _, port = await build_server(orchestrator, registry, f"{config.host}:{config.port}")
        log.info("serving %s on %s:%s", ", ".join(registry.names()), config.host, port)
        return cls(pool, orchestrator, server, port)

    async def stop(self, grace: float = 5.0) -> None:
        await self.server.stop(grace)
        await self.orchestrator.shutdown()
        await self.pool.close()
