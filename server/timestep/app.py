"""The composition root: database → store → runtime → orchestration (+ durability) → gRPC
server, each resource on one exit stack, and an orderly shutdown that closes them in reverse.

Longer than the other modules (~500 lines) on purpose: every resource the service opens is
wired here, in the order it opens, so that the order of start-up and shutdown reads in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
import grpc
from grpc_health.v1.health import aio as health_aio

from timestep.api.auth import ApiKeys, AuthInterceptor, check_exposure
from timestep.api.availability import DatabaseMonitor
from timestep.api.grpc.server import (
    add_services,
    build_server,
    server_options,
    set_not_serving,
    start_health_server,
)
from timestep.api.grpc.servicers import MalformedRequests
from timestep.api.handlers import services
from timestep.api.tls import server_credentials
from timestep.domain import MultitaskStrategy
from timestep.durability.engine import DurableEngine, default_executor_id
from timestep.durability.schedules import DurableSchedules
from timestep.durability.webhooks import WebhookDispatcher
from timestep.examples.agents import local_agents
from timestep.observability.interceptor import Drain, ServiceInterceptor
from timestep.observability.metrics import Metrics, MetricsServer
from timestep.runs.deletion import RunDeleter
from timestep.runs.events import EventBus
from timestep.runs.expiry import ApprovalExpiry
from timestep.runs.launcher import InProcessLauncher
from timestep.runs.orchestrator import RunOrchestrator
from timestep.runs.relay import relayed_bus
from timestep.runs.retention import RetentionSweeper
from timestep.runs.schedules import NoSchedules, Schedules
from timestep.runs.segments import SegmentExecutor
from timestep.runtime.models import ModelProviderError, MultiModelProvider
from timestep.runtime.models.errors import LocalModelNotInstalledError
from timestep.runtime.models.request_limits import RequestLimiter
from timestep.runtime.providers import ModelConfig
from timestep.runtime.registry import AgentRegistry, load_agents
from timestep.runtime.runner import openai_tracing
from timestep.settings import (
    DEFAULT_AGENTS,
    DEFAULT_KEEPALIVE_TIME_MS,
    DEFAULT_KEEPALIVE_TIMEOUT_MS,
    DEFAULT_MAX_TURNS,
    DEFAULT_PORT,
    DEFAULT_REPLICA_TIMEOUT_S,
    DEFAULT_SHUTDOWN_GRACE_S,
    DEFAULT_STRANDED_GRACE_S,
    LOCAL_PREFIX,
    ApprovalSettings,
    ConfigurationError,
    Limits,
    ProviderLimits,
    RetentionPolicy,
    ScheduleLimits,
    WebhookSettings,
)
from timestep.store.database import open_pool, redact, resolve_database
from timestep.store.deletion import DeletionStore
from timestep.store.request_slots import RequestSlots
from timestep.store.runs import RunStore
from timestep.store.schedules import ScheduleStore
from timestep.store.session_store import SessionStore
from timestep.store.usage import UsageStore
from timestep.store.webhooks import WebhookStore
from timestep.webhooks.client import ClientSettings, WebhookClient
from timestep.webhooks.service import Webhooks

if TYPE_CHECKING:
    from timestep.api.http.server import HttpServer
    from timestep.observability.tracing import Tracing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # module:attribute of the agents; None: the example agents, on OpenAI when it is configured,
    # else on the local model (timestep.examples.agents:AGENTS or local_agents()).
    agents: str | None = None
    # None: PG_CONNECTION_URI, else localhost:5432, else embedded PostgreSQL.
    database_url: str | None = None
    max_turns: int = DEFAULT_MAX_TURNS
    # Run segments as DBOS workflows (crash recovery, queues, schedules); off: plain tasks.
    durable: bool = True
    # This replica's name among those sharing the database; default host:port.
    executor_id: str = ""
    # Limits per model provider ("openai", "ollama", ...): concurrency on its queue, requests at
    # each model request.
    provider_limits: dict[str, ProviderLimits] = field(default_factory=dict)
    # A replica silent this long is presumed dead and its segments are recovered elsewhere.
    replica_timeout_s: float = DEFAULT_REPLICA_TIMEOUT_S
    # A run QUEUED or RUNNING without a live segment workflow this long is recovered (or failed).
    stranded_grace_s: float = DEFAULT_STRANDED_GRACE_S
    # Every RPC over Connect and gRPC-Web, and the console, on this port (0: any free port);
    # None: no HTTP port. Browsers on other origins may call it only if named in cors_origins.
    http_port: int | None = None
    cors_origins: tuple[str, ...] = ()
    # Prometheus metrics over HTTP on this port (0: any free port); None: no metrics endpoint.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # The health service alone, plaintext, on this port too (0: any free port); None: not served.
    health_port: int | None = None
    health_host: str = "127.0.0.1"
    # gRPC keepalive pings on idle connections.
    keepalive_time_ms: int = DEFAULT_KEEPALIVE_TIME_MS
    keepalive_timeout_ms: int = DEFAULT_KEEPALIVE_TIMEOUT_MS
    # TLS: PEM certificate chain and private key (None: plaintext); with a client CA, clients
    # must present a certificate it signed (mTLS).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    # Request size and concurrency limits.
    limits: Limits = field(default_factory=Limits)
    # How many schedules a tenant may have, and how often they may fire.
    schedule_limits: ScheduleLimits = field(default_factory=ScheduleLimits)
    # API keys (hashed) and their tenants; empty: no authentication, every caller is tenant "".
    api_keys: ApiKeys = field(default_factory=ApiKeys)
    # Require keys for health checking and reflection too (default: open, for load balancers).
    authenticate_health: bool = False
    # Without API keys the service binds only loopback addresses unless this is set.
    allow_unauthenticated: bool = False
    # OpenTelemetry: export traces with OTLP/HTTP to this collector (None: no tracing).
    otlp_endpoint: str | None = None
    otel_service_name: str = "timestep"
    # Delete finished runs this old on a durable sweep (None: keep everything).
    retention: RetentionPolicy | None = None
    # What CreateRun does in a busy session when the request names no strategy.
    default_multitask_strategy: MultitaskStrategy = MultitaskStrategy.ENQUEUE
    # Webhook destinations, timeouts and retries.
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    # Runs' default approval timeout and expiry message.
    approvals: ApprovalSettings = field(default_factory=ApprovalSettings)


@dataclass
class _Shutdown:
    """How long the gRPC server gives running RPCs when it stops: `stop` says; a start that
    fails gives them nothing (none were served)."""

    grace: float = 0.0
    began: float = field(default_factory=time.monotonic)


class TimestepService:
    """A running service. Create with `await TimestepService.start(config)`."""

    def __init__(
        self,
        resources: contextlib.AsyncExitStack,
        shutdown: _Shutdown,
        *,
        pool: asyncpg.Pool,
        orchestrator: RunOrchestrator,
        bus: EventBus,
        server: grpc.aio.Server,
        port: int,
        health: health_aio.HealthServicer,
        drain: Drain,
        metrics: Metrics,
        metrics_port: int | None,
        health_port: int | None,
        http_port: int | None,
        database_monitor: DatabaseMonitor,
    ) -> None:
        # What `stop` closes, in the reverse order of opening.
        self._resources = resources
        self._shutdown = shutdown
        self.pool = pool
        self.orchestrator = orchestrator
        # Live events of this process's runs (subscriptions of open event streams).
        self.bus = bus
        self.server = server
        self.port = port
        self.health = health
        self._drain = drain
        self.metrics = metrics
        # The bound metrics, plaintext health and HTTP ports, when they are on.
        self.metrics_port = metrics_port
        self.health_port = health_port
        self.http_port = http_port
        self._database_monitor = database_monitor
        self._stopped = False

    @classmethod
    async def start(
        cls,
        config: ServiceConfig,
        *,
        registry: AgentRegistry | None = None,
        model_config: ModelConfig | None = None,
    ) -> TimestepService:
        """Open every resource of the service in turn, each joining an exit stack as it opens;
        `stop` closes them in reverse. A step that fails (a port taken...) closes those opened so
        far and raises its error."""
        # Bad TLS files or a bad price table fail here, before anything is started.
        credentials = server_credentials(config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file)
        model_config = model_config or ModelConfig.from_env()
        check_exposure(config.host, config.api_keys, allow_unauthenticated=config.allow_unauthenticated)
        if config.retention is not None and not config.durable:
            raise ConfigurationError(
                "--retention deletes runs on durable sweeps: drop --no-durability, or --retention."
            )
        shutdown = _Shutdown()
        async with contextlib.AsyncExitStack() as stack:
            tracing = _start_tracing(config)
            if tracing is not None:
                # Exports the spans still buffered, over blocking HTTP: off the event loop.
                stack.push_async_callback(asyncio.to_thread, tracing.shutdown)
            registry = registry or (
                load_agents(config.agents) if config.agents else _example_agents(model_config)
            )
            models = model_config.provider()
            # Closed once the segments have stopped.
            stack.push_async_callback(models.aclose)
            # Before the database: a model that cannot run stops the start with nothing touched.
            await _prepare_models(models, registry, model_config, examples=config.agents is None)
            dsn = config.database_url
            if dsn is None:
                target = await resolve_database()
                log.info("using %s database %s", target.source, redact(target.dsn))
                dsn = target.dsn
            executor_id = config.executor_id or default_executor_id(config.port)
            pool = await open_pool(dsn)
            stack.push_async_callback(pool.close)
            bus = await stack.enter_async_context(relayed_bus(dsn, pool, origin=executor_id))
            store = RunStore(pool, origin=executor_id, max_active_runs=config.limits.max_active_runs)
            executor = SegmentExecutor(
                store,
                bus,
                registry,
                pool,
                model_config,
                models,
                max_turns=config.max_turns,
                trace_segments=tracing is not None,
                request_limiter=(
                    RequestLimiter(RequestSlots(pool), config.provider_limits)
                    if any(limits.requests is not None for limits in config.provider_limits.values())
                    else None
                ),
            )
            schedules: Schedules
            deleter: RunDeleter
            sessions = SessionStore(pool)
            webhooks: Webhooks | None = None
            if config.durable:
                webhooks = Webhooks(WebhookStore(pool), store, allow_private=config.webhooks.allow_private)
                dispatcher = _webhook_dispatcher(stack, pool, webhooks, config.webhooks)
                engine = DurableEngine(
                    dsn,
                    executor,
                    store,
                    executor_id=executor_id,
                    limits=config.provider_limits,
                    replica_timeout_s=config.replica_timeout_s,
                    stranded_grace_s=config.stranded_grace_s,
                )
                orchestrator = RunOrchestrator(
                    store,
                    bus,
                    registry,
                    engine,
                    approvals=config.approvals,
                    webhooks=webhooks,
                    default_strategy=config.default_multitask_strategy,
                )
                deleter = RunDeleter(DeletionStore(pool, sessions), orchestrator, engine)
                durable_schedules = DurableSchedules(
                    orchestrator,
                    registry,
                    ScheduleStore(pool),
                    limits=config.schedule_limits,
                    max_active_runs=config.limits.max_active_runs,
                )
                # Recovers this replica's pending segments and firings.
                await stack.enter_async_context(
                    engine.running(durable_schedules.fire, RetentionSweeper(deleter), config.retention)
                )
                dispatcher.start()
                stack.push_async_callback(dispatcher.stop)
                schedules = durable_schedules
            else:
                launcher = InProcessLauncher(executor)
                stack.push_async_callback(launcher.close)
                orchestrator = RunOrchestrator(
                    store,
                    bus,
                    registry,
                    launcher,
                    approvals=config.approvals,
                    default_strategy=config.default_multitask_strategy,
                )
                deleter = RunDeleter(DeletionStore(pool, sessions), orchestrator, launcher)
                schedules = NoSchedules()
            await orchestrator.relaunch_queued()
            expiry = ApprovalExpiry(orchestrator, config.approvals.check_interval_s)
            expiry.start()
            stack.push_async_callback(expiry.stop)
            metrics = Metrics(pool)
            metrics_port: int | None = None
            if config.metrics_port is not None:
                metrics_server = MetricsServer(metrics)
                stack.push_async_callback(metrics_server.stop)
                metrics_port = await metrics_server.start(config.metrics_host, config.metrics_port)
                log.info("metrics on http://%s:%s/metrics", config.metrics_host, metrics_port)
            metrics.observe_model_calls()
            stack.callback(metrics.stop_observing_model_calls)
            # NOT_SERVING until the main port serves.
            health = health_aio.HealthServicer()
            await set_not_serving(health)
            health_port: int | None = None
            if config.health_port is not None:
                health_server, health_port = await start_health_server(
                    health, f"{config.health_host}:{config.health_port}"
                )
                # Stopped after the main port: it says NOT_SERVING until then.
                stack.push_async_callback(health_server.stop, 0)
                log.info("health checks (plaintext) on %s:%s", config.health_host, health_port)
            drain = Drain()
            # One set of handlers, served over gRPC and (on the HTTP port) Connect.
            handlers = services(
                orchestrator,
                registry,
                UsageStore(pool),
                schedules,
                webhooks,
                config.limits,
                sessions,
                deleter,
            )
            # Outermost first: metrics and access logs also count refused calls.
            interceptors = [
                *([tracing.interceptor()] if tracing else []),
                ServiceInterceptor(metrics, drain),
                AuthInterceptor(config.api_keys, protect_open_methods=config.authenticate_health),
                MalformedRequests(),
            ]
            server, port = await build_server(
                handlers,
                health,
                f"{config.host}:{config.port}",
                interceptors=interceptors,
                options=server_options(config.keepalive_time_ms, config.keepalive_timeout_ms, config.limits),
                limits=config.limits,
                credentials=credentials,
            )
            stack.push_async_callback(_stop_server, server, shutdown)
            http_port: int | None = None
            if config.http_port is not None:
                # Imported only with an HTTP port (Connect and its server take a tenth of a second).
                from timestep.api.http.server import HttpTls, start_http_server

                http_server, http_port = await start_http_server(
                    lambda collector: add_services(collector, handlers, health, config.limits),
                    interceptors,
                    config.limits,
                    (config.host, config.http_port),
                    cors_origins=config.cors_origins,
                    tls=HttpTls(config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file)
                    if config.tls_cert_file and config.tls_key_file
                    else None,
                )
                stack.push_async_callback(_stop_http_server, http_server, shutdown)
                log.info("HTTP (Connect, gRPC-Web, console) on %s:%s", config.host, http_port)
            database_monitor = DatabaseMonitor(pool, health, drain)
            database_monitor.start()
            stack.push_async_callback(database_monitor.stop)
            log.info(
                "serving %s on %s:%s (%s, executor %s)",
                ", ".join(registry.names()),
                config.host,
                port,
                "durable" if config.durable else "not durable",
                executor_id,
            )
            return cls(
                stack.pop_all(),
                shutdown,
                pool=pool,
                orchestrator=orchestrator,
                bus=bus,
                server=server,
                port=port,
                health=health,
                drain=drain,
                metrics=metrics,
                metrics_port=metrics_port,
                health_port=health_port,
                http_port=http_port,
                database_monitor=database_monitor,
            )

    @property
    def draining(self) -> bool:
        return self._drain.draining

    async def drain(self) -> None:
        """Begin shutting down: health turns NOT_SERVING (overall and per service), new RPCs are
        refused with UNAVAILABLE, and open event streams end with UNAVAILABLE so that clients
        reconnect (after the restart, or to another replica) from their last sequence. RPCs
        already running carry on; `stop` waits for them."""
        if self._drain.draining:
            return
        await set_not_serving(self.health)
        self._drain.begin()

    async def stop(self, grace: float = DEFAULT_SHUTDOWN_GRACE_S) -> None:
        """Drain, give running RPCs up to `grace` seconds, then stop. Run segments still in
        flight stay pending in the database and are recovered when a replica with this
        executor id starts again (or by another replica once this one's heartbeat is stale)."""
        if self._stopped:
            return
        self._stopped = True
        self._shutdown.grace, self._shutdown.began = grace, time.monotonic()
        # From here on health is the drain's: no probe may report SERVING again, and none delays
        # the server's stop (a call arriving while it stops is CANCELLED rather than refused).
        await self._database_monitor.stop()
        await self.drain()
        await self._resources.aclose()


async def _stop_http_server(server: HttpServer, shutdown: _Shutdown) -> None:
    await server.stop(shutdown.grace)


async def _stop_server(server: grpc.aio.Server, shutdown: _Shutdown) -> None:
    await server.stop(shutdown.grace)
    log.info("gRPC server stopped after %.1fs", time.monotonic() - shutdown.began)


def _example_agents(model_config: ModelConfig) -> AgentRegistry:
    """The example agents: on OpenAI when it is configured, else on the local model, so that they
    run out of the box."""
    if model_config.openai_configured:
        return load_agents(DEFAULT_AGENTS)
    return AgentRegistry(local_agents(f"{LOCAL_PREFIX}/{model_config.local_provider().model_name}"))


async def _prepare_models(
    models: MultiModelProvider, registry: AgentRegistry, model_config: ModelConfig, *, examples: bool
) -> None:
    """Get the agents' models ready (the local model loads), so that one which cannot run stops
    the start with the reason; and say when the example agents run on the local model."""
    for model in sorted({registry.describe(name).model for name in registry.names()}):
        try:
            await models.prepare(model)
        except LocalModelNotInstalledError as error:
            # Not fatal: a service installed without the `local` extra still serves runs on other
            # models (CreateRun.model); runs on this one fail with the same message.
            log.warning("the agents' model %s cannot run until it is installed: %s", model, error.message)
        except ModelProviderError as error:
            raise ConfigurationError(f"the agents' model {model} cannot run: {error.message}") from error
    if examples and not model_config.openai_configured:
        log.warning(
            "No OPENAI_API_KEY or OPENAI_BASE_URL is set: the example agents run on the local model "
            "(%s), a small model for trying Timestep out, not for quality; the assistant's first turn "
            "always calls send_email. Set OPENAI_API_KEY to run them on OpenAI.",
            model_config.local_provider().describe(),
        )


def _webhook_dispatcher(
    stack: contextlib.AsyncExitStack, pool: asyncpg.Pool, webhooks: Webhooks, settings: WebhookSettings
) -> WebhookDispatcher:
    """The webhook delivery workflows' dispatcher, bound before DBOS launches (which recovers
    pending deliveries at once); its HTTP client closes after DBOS has stopped."""
    client = WebhookClient(
        ClientSettings(
            allow_private=settings.allow_private,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
        )
    )
    stack.push_async_callback(client.aclose)
    dispatcher = WebhookDispatcher(WebhookStore(pool), webhooks, client, settings)
    dispatcher.bind()
    stack.callback(dispatcher.unbind)
    return dispatcher


def _start_tracing(config: ServiceConfig) -> Tracing | None:
    """OpenTelemetry tracing when an OTLP endpoint is configured (imported only then: optional)."""
    if not config.otlp_endpoint:
        return None
    from timestep.observability.tracing import Tracing

    tracing = Tracing(config.otlp_endpoint, config.otel_service_name)
    tracing.start(keep_openai_export=openai_tracing())
    log.info("tracing to %s as %s", config.otlp_endpoint, config.otel_service_name)
    return tracing
