"""Wiring: database → store → runtime → orchestration (+ durability) → gRPC server, and an
orderly shutdown."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import asyncpg
import grpc

from timestep.api.server import build_server
from timestep.durability.engine import DurableEngine, ProviderLimits, default_executor_id
from timestep.runs.events import EventBus
from timestep.runs.launcher import InProcessLauncher, SegmentLauncher
from timestep.runs.orchestrator import RunOrchestrator
from timestep.runs.relay import EventRelay
from timestep.runs.schedules import NoSchedules, Schedules
from timestep.runs.segments import SegmentExecutor
from timestep.runtime.providers import ModelConfig
from timestep.runtime.registry import DEFAULT_AGENTS, AgentRegistry, load_agents
from timestep.runtime.runner import DEFAULT_MAX_TURNS
from timestep.store.database import open_pool, redact, resolve_database
from timestep.store.runs import RunStore
from timestep.store.usage import UsageStore

log = logging.getLogger(__name__)

DEFAULT_REPLICA_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    agents: str = DEFAULT_AGENTS
    # None: PG_CONNECTION_URI, else localhost:5432, else embedded PostgreSQL.
    database_url: str | None = None
    max_turns: int = DEFAULT_MAX_TURNS
    # Run segments as DBOS workflows (crash recovery, queues, schedules); off: plain tasks.
    durable: bool = True
    # This replica's name among those sharing the database; default host:port.
    executor_id: str = ""
    # Queue limits per model provider ("openai", "ollama", ...).
    provider_limits: dict[str, ProviderLimits] = field(default_factory=dict)
    # A replica silent this long is presumed dead and its segments are recovered elsewhere.
    replica_timeout_s: float = DEFAULT_REPLICA_TIMEOUT_S


class TimestepService:
    """A running service. Create with `await TimestepService.start(config)`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        orchestrator: RunOrchestrator,
        launcher: SegmentLauncher,
        relay: EventRelay,
        server: grpc.aio.Server,
        port: int,
    ) -> None:
        self.pool = pool
        self.orchestrator = orchestrator
        self.launcher = launcher
        self._relay = relay
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
        executor_id = config.executor_id or default_executor_id(config.port)
        pool = await open_pool(dsn)
        store = RunStore(pool, origin=executor_id)
        bus = EventBus()
        relay = EventRelay(dsn, pool, bus, origin=executor_id)
        await relay.start()
        executor = SegmentExecutor(
            store, bus, registry, pool, model_config or ModelConfig.from_env(), max_turns=config.max_turns
        )
        launcher: SegmentLauncher
        schedules: Schedules
        if config.durable:
            engine = DurableEngine(
                dsn,
                executor,
                store,
                executor_id=executor_id,
                limits=config.provider_limits,
                replica_timeout_s=config.replica_timeout_s,
            )
            orchestrator = RunOrchestrator(store, bus, registry, engine)
            schedules = engine.schedules(orchestrator, registry)
            await engine.start()  # recovers this replica's pending segments and firings
            launcher = engine
        else:
            launcher = InProcessLauncher(executor)
            orchestrator = RunOrchestrator(store, bus, registry, launcher)
            schedules = NoSchedules()
        await orchestrator.relaunch_queued()
        address = f"{config.host}:{config.port}"
        server, _, port = await build_server(orchestrator, registry, UsageStore(pool), schedules, address)
        log.info(
            "serving %s on %s:%s (%s, executor %s)",
            ", ".join(registry.names()),
            config.host,
            port,
            "durable" if config.durable else "not durable",
            executor_id,
        )
        return cls(pool, orchestrator, launcher, relay, server, port)

    async def stop(self, grace: float = 5.0) -> None:
        await self.server.stop(grace)
        await self.launcher.close()
        await self._relay.stop()
        await self.pool.close()
