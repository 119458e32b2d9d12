"""The `timestep` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from timestep.app import ServiceConfig, TimestepService
from timestep.runtime.registry import DEFAULT_AGENTS
from timestep.runtime.runner import DEFAULT_MAX_TURNS

DESCRIPTION = """\
Timestep runs OpenAI Agents SDK agents as a gRPC service with durable, human-in-the-loop runs.

Environment:
  OPENAI_API_KEY      API key for OpenAI models (runs fail with a clear error without it)
  OPENAI_BASE_URL     OpenAI-compatible endpoint (default: OpenAI's)
  PG_CONNECTION_URI   PostgreSQL to use; without it the service uses localhost:5432 if a server
                      answers there (database "timestep"), else starts an embedded PostgreSQL
  TIMESTEP_DATA_DIR   where the embedded PostgreSQL keeps its data (default ~/.local/share/timestep)
  TIMESTEP_AGENTS     default for --agents
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="timestep", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="start the gRPC service", description="Start the gRPC service.")
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
    return parser


async def serve(config: ServiceConfig) -> None:
    service = await TimestepService.start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Only now: whoever waits for this line may stop the service right after reading it.
    print(f"timestep: serving on {config.host}:{service.port}", flush=True)
    await stop.wait()
    logging.getLogger(__name__).info("shutting down")
    await service.stop()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # its INFO lines are initdb transcripts
    config = ServiceConfig(host=args.host, port=args.port, agents=args.agents, max_turns=args.max_turns)
    asyncio.run(serve(config))
