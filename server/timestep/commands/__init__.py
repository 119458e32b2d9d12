"""The client subcommands of `timestep` (everything but `serve`): a friendly alternative to
grpcurl, with `--json` output, a progress display while waiting, and exit codes for scripts."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

import grpc
from timestep_client import TimestepClient, TlsOptions

from timestep.commands import agents, decisions, health, runs, schedules, sessions, state, webhooks
from timestep.commands.output import (
    EXIT_CODES,
    INTERRUPTED_BY_USER,
    USAGE,
    Output,
    describe_error,
    exit_code_for,
)
from timestep.settings import DEFAULT_PORT

Handler = Callable[[TimestepClient, argparse.Namespace, Output], Awaitable[int]]

DEFAULT_TARGET = f"localhost:{DEFAULT_PORT}"
TLS_OPTIONS = (
    ("--tls-ca", "TIMESTEP_TLS_CA", "the CA that signed the server's certificate (else the system's roots)"),
    ("--tls-cert", "TIMESTEP_TLS_CLIENT_CERT", "this client's certificate, for a server that requires one"),
    ("--tls-key", "TIMESTEP_TLS_CLIENT_KEY", "the private key of --tls-cert"),
)


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """--target, --json and the TLS files; on subcommands (`suppress`) they only override what was given
    before the subcommand, so both `timestep --json runs list` and `timestep runs list --json` work."""
    parser.add_argument(
        "--target",
        metavar="HOST:PORT",
        default=argparse.SUPPRESS if suppress else os.environ.get("TIMESTEP_TARGET", DEFAULT_TARGET),
        help=f"the Timestep service to talk to (default: TIMESTEP_TARGET, else {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="machine output: one JSON object per result (proto field names)",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        default=argparse.SUPPRESS if suppress else os.environ.get("TIMESTEP_API_KEY"),
        help="API key for a service that requires one (default: TIMESTEP_API_KEY; prefer the "
        "variable: command lines are visible to other users)",
    )
    for flag, variable, what in TLS_OPTIONS:
        parser.add_argument(
            flag,
            metavar="FILE",
            default=argparse.SUPPRESS if suppress else os.environ.get(variable),
            help=f"{what} (PEM; default: {variable}); any of the three turns TLS on",
        )


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the client subcommands to `timestep`'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    add_global_options(common, suppress=True)
    for module in (runs, sessions, decisions, state, agents, schedules, webhooks, health):
        module.add_commands(commands, common)


def run(args: argparse.Namespace) -> int:
    """Run the chosen client subcommand; returns the exit code."""
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return INTERRUPTED_BY_USER


async def _run(args: argparse.Namespace) -> int:
    handler: Handler = args.handler
    output = Output(args.json)
    try:
        tls = _tls_options(args)
    except (OSError, ValueError) as error:
        print(f"timestep: {error}", file=sys.stderr)
        return USAGE
    async with TimestepClient(args.target, tls=tls, api_key=args.api_key) as client:
        try:
            return await handler(client, args, output)
        except grpc.aio.AioRpcError as error:
            print(f"timestep: {describe_error(error)}", file=sys.stderr)
            return exit_code_for(error.code())
        except OSError as error:  # reading or writing a state file
            print(f"timestep: {error}", file=sys.stderr)
            return USAGE


def _tls_options(args: argparse.Namespace) -> TlsOptions | None:
    if not (args.tls_ca or args.tls_cert or args.tls_key):
        return None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together: a client certificate needs its private key")
    return TlsOptions.from_files(args.tls_ca, args.tls_cert, args.tls_key)


__all__ = ["EXIT_CODES", "add_commands", "add_global_options", "run"]
