"""The `timestep` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from timestep import commands as client_commands
from timestep.observability.logging import LOG_FORMATS, configure_logging
from timestep.settings import (
    DEFAULT_AGENTS,
    DEFAULT_KEEPALIVE_TIME_MS,
    DEFAULT_KEEPALIVE_TIMEOUT_MS,
    DEFAULT_MAX_TURNS,
    DEFAULT_REPLICA_TIMEOUT_S,
    DEFAULT_SHUTDOWN_GRACE_S,
    ProviderLimits,
)

if TYPE_CHECKING:
    from timestep.app import ServiceConfig

ENVIRONMENT = """\
Environment:
  OPENAI_API_KEY      API key for OpenAI models (runs on them fail with model_not_configured
                      without it)
  OPENAI_BASE_URL     OpenAI-compatible endpoint (default: OpenAI's)
  OLLAMA_HOST         the local Ollama for "ollama/..." models (default http://localhost:11434)
  OLLAMA_API_KEY      Ollama Cloud key: "ollama/<name>-cloud" models then run on https://ollama.com
  FIRECRAWL_API_KEY   key for the web_search tool (FIRECRAWL_BASE_URL for another Firecrawl)
  TIMESTEP_PRICES     JSON file of model prices (USD per million tokens) for cost estimates
  PG_CONNECTION_URI   PostgreSQL to use; without it the service uses localhost:5432 if a server
                      answers there (database "timestep"), else starts an embedded PostgreSQL
  TIMESTEP_DATA_DIR   where the embedded PostgreSQL keeps its data (default ~/.local/share/timestep)
  TIMESTEP_AGENTS     default for --agents

Model names: "gpt-4.1" or "openai/gpt-4.1" run on OpenAI, "ollama/llama3.2" on Ollama.
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
    serve.add_argument("--port", type=int, default=50051, help="port to listen on (default: %(default)s)")
    serve.add_argument(
        "--agents",
        default=os.environ.get("TIMESTEP_AGENTS", DEFAULT_AGENTS),
        help="module:attribute naming a list of agents.Agent (default: %(default)s)",
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
        help="queue limits for a model provider, e.g. openai:concurrency=8,requests=2,period=1 "
        "(at most 8 segments at once, 2 segment starts per second); repeatable",
    )
    durability.add_argument(
        "--replica-timeout",
        type=float,
        default=DEFAULT_REPLICA_TIMEOUT_S,
        help="seconds without a heartbeat after which a replica's segments are recovered by another "
        "(default: %(default)s)",
    )
    client_commands.add_commands(commands)
    return parser


def parse_provider_limit(text: str) -> tuple[str, ProviderLimits]:
    provider, _, settings = text.partition(":")
    values: dict[str, str] = dict(part.split("=", 1) for part in settings.split(",") if "=" in part)
    unknown = set(values) - {"concurrency", "requests", "period"}
    if not provider or not settings or unknown:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected PROVIDER:concurrency=N,requests=M,period=S (any of the three)"
        )
    try:
        return provider, ProviderLimits(
            concurrency=int(values["concurrency"]) if "concurrency" in values else None,
            requests=int(values["requests"]) if "requests" in values else None,
            period_s=float(values.get("period", 1.0)),
        )
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from error


async def serve(config: ServiceConfig, shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE_S) -> None:
    from timestep.app import TimestepService  # the service itself loads only when serving

    service = await TimestepService.start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Only now: whoever waits for this line may stop the service right after reading it.
    print(f"timestep: serving on {config.host}:{service.port}", flush=True)
    await stop.wait()
    logging.getLogger(__name__).info("shutting down (grace %ss)", shutdown_grace)
    await service.stop(shutdown_grace)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
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
        metrics_port=args.metrics_port or None,
        metrics_host=args.metrics_host,
        keepalive_time_ms=round(args.keepalive_time * 1000),
        keepalive_timeout_ms=round(args.keepalive_timeout * 1000),
    )
    asyncio.run(serve(config, args.shutdown_grace))
