"""Prometheus metrics: a registry per service, and an HTTP endpoint serving it.

| metric                                   | type      | labels         |
|------------------------------------------|-----------|----------------|
| timestep_rpc_requests_total              | counter   | method, code   |
| timestep_rpc_latency_seconds             | histogram | method, code   |
| timestep_rpc_active_streams              | gauge     | method         |
| timestep_runs                            | gauge     | status         |
| timestep_queue_depth                     | gauge     | queue          |
| timestep_model_call_seconds              | histogram | model, outcome |
| timestep_tokens_total                    | counter   | model, kind    |
| timestep_schedule_missed_fires           | gauge     |                |
| timestep_retention_deleted               | gauge     | kind           |
| timestep_retention_last_sweep_timestamp_seconds | gauge |             |

`timestep_runs`, `timestep_queue_depth`, `timestep_schedule_missed_fires` (firings schedules
skipped for want of room under --max-active-runs, over the schedules that exist) and the
retention totals (runs and session items every replica's sweeps deleted, and when the last
sweep ran) are counted in the database at each scrape, so they cover every replica sharing it;
the others count what this process served.
"""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from timestep.domain import RunStatus
from timestep.runtime.observers import ModelCallReport, model_call_observers

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_MODEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)


class Metrics:
    """The service's metrics. `observe_model_calls()` hooks the runtime's model calls."""

    def __init__(self, pool: asyncpg.Pool | None = None) -> None:
        self._pool = pool
        self.registry = CollectorRegistry(auto_describe=True)
        self.rpc_requests = Counter(
            "timestep_rpc_requests",
            "RPCs handled, by method and status code.",
            ("method", "code"),
            registry=self.registry,
        )
        self.rpc_latency = Histogram(
            "timestep_rpc_latency_seconds",
            "Time to handle an RPC (for streams: until the stream ended), by method and status code.",
            ("method", "code"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.active_streams = Gauge(
            "timestep_rpc_active_streams",
            "Server-streaming RPCs open now.",
            ("method",),
            registry=self.registry,
        )
        self.runs = Gauge(
            "timestep_runs", "Runs in the database by status.", ("status",), registry=self.registry
        )
        self.queue_depth = Gauge(
            "timestep_queue_depth", "QUEUED runs by queue name.", ("queue",), registry=self.registry
        )
        self.schedule_missed_fires = Gauge(
            "timestep_schedule_missed_fires",
            "Firings the existing schedules skipped because their tenant had --max-active-runs runs active.",
            registry=self.registry,
        )
        self.retention_deleted = Gauge(
            "timestep_retention_deleted",
            "What --retention sweeps deleted so far, by kind (runs, session_items).",
            ("kind",),
            registry=self.registry,
        )
        self.retention_last_sweep = Gauge(
            "timestep_retention_last_sweep_timestamp_seconds",
            "When a --retention sweep last ran (0: never).",
            registry=self.registry,
        )
        self.model_call_seconds = Histogram(
            "timestep_model_call_seconds",
            "Duration of model calls that reached a provider (replayed calls excluded).",
            ("model", "outcome"),
            buckets=_MODEL_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "timestep_tokens",
            "Tokens used by model calls, by model and kind (input, output, cached, reasoning).",
            ("model", "kind"),
            registry=self.registry,
        )

    # ----- model calls ---------------------------------------------------------------------

    def record_model_call(self, report: ModelCallReport) -> None:
        self.model_call_seconds.labels(report.model, "ok" if report.ok else "error").observe(report.seconds)
        for kind, count in (
            ("input", report.input_tokens),
            ("output", report.output_tokens),
            ("cached", report.cached_tokens),
            ("reasoning", report.reasoning_tokens),
        ):
            if count:
                self.tokens.labels(report.model, kind).inc(count)

    def observe_model_calls(self) -> None:
        model_call_observers.append(self.record_model_call)

    def stop_observing_model_calls(self) -> None:
        if self.record_model_call in model_call_observers:
            model_call_observers.remove(self.record_model_call)

    # ----- RPCs ----------------------------------------------------------------------------

    def record_rpc(self, method: str, code: str, seconds: float) -> None:
        self.rpc_requests.labels(method, code).inc()
        self.rpc_latency.labels(method, code).observe(seconds)

    # ----- scraping ------------------------------------------------------------------------

    async def refresh_from_database(self) -> None:
        """Count runs by status, the runs waiting on each provider queue (a provider without
        limits has none: its segments start at once), and schedules' missed firings."""
        if self._pool is None:
            return
        async with self._pool.acquire() as connection:
            by_status = await connection.fetch("SELECT status, count(*) AS n FROM runs GROUP BY status")
            by_queue = await connection.fetch(
                """SELECT queue_name, count(*) AS n FROM runs
                   WHERE status = 'queued' AND queue_name <> '' GROUP BY queue_name"""
            )
            missed = await connection.fetchval("SELECT coalesce(sum(missed_fires), 0) FROM schedule_misses")
            retention = await connection.fetchrow(
                """SELECT runs, session_items, coalesce(extract(epoch FROM last_sweep_time), 0) AS last
                   FROM retention_totals"""
            )
        counts = {row["status"]: row["n"] for row in by_status}
        for status in RunStatus:
            self.runs.labels(status.value).set(counts.get(status.value, 0))
        self.schedule_missed_fires.set(missed)
        if retention is not None:
            self.retention_deleted.labels("runs").set(retention["runs"])
            self.retention_deleted.labels("session_items").set(retention["session_items"])
            self.retention_last_sweep.set(float(retention["last"]))
        self.queue_depth.clear()
        for row in by_queue:
            self.queue_depth.labels(row["queue_name"]).set(row["n"])

    async def exposition(self) -> bytes:
        try:
            await self.refresh_from_database()
        except (asyncpg.PostgresError, OSError) as error:  # serve what we have; say why it is stale
            log.warning("metrics: could not count runs in the database: %s", error)
        return generate_latest(self.registry)


class MetricsServer:
    """GET /metrics (Prometheus text format) on an HTTP port."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        return self.port

    async def _serve(self, request: web.Request) -> web.Response:
        body = await self._metrics.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
