"""`timestep approve|reject|resume`: deciding a paused run's interruptions and resuming it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from timestep_client import TimestepClient
from timestep_client.v1 import runs_pb2

from timestep.commands.output import OK, Output, exit_code_for_run, format_interruption, format_run
from timestep.commands.runs import wait_for


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    approve = commands.add_parser(
        "approve", help="approve a pending tool call of a paused run", parents=[common]
    )
    approve.add_argument("run", metavar="RUN")
    approve.add_argument("interruption", metavar="INTERRUPTION")
    approve.add_argument(
        "--always", action="store_true", help="also approve this tool's later calls in this run"
    )
    approve.add_argument(
        "--arguments",
        type=json_object,
        metavar="JSON",
        help="run the tool with these arguments (a JSON object) instead of the proposed ones",
    )
    add_decision_options(approve)
    approve.set_defaults(handler=approve_interruption)

    reject = commands.add_parser(
        "reject", help="reject a pending tool call of a paused run", parents=[common]
    )
    reject.add_argument("run", metavar="RUN")
    reject.add_argument("interruption", metavar="INTERRUPTION")
    reject.add_argument("--message", default="", help="what the model is told instead of the tool's output")
    reject.add_argument(
        "--always", action="store_true", help="also reject this tool's later calls in this run"
    )
    add_decision_options(reject)
    reject.set_defaults(handler=reject_interruption)

    resume = commands.add_parser(
        "resume",
        help="resume a paused run once its interruptions are decided",
        description="Resume a paused run. With --wait, show its progress and exit when it stops: "
        "0 completed, 1 failed or cancelled, 3 paused again awaiting approval.",
        parents=[common],
    )
    resume.add_argument("run", metavar="RUN")
    resume.add_argument("--wait", action="store_true", help="wait until the run stops, showing progress")
    resume.set_defaults(handler=resume_run)


def add_decision_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--decided-by", default="", metavar="WHO", help="who decides (recorded)")
    command.add_argument(
        "--resume",
        action="store_true",
        help="resume the run in the same call if this was its last undecided interruption",
    )
    command.add_argument(
        "--wait", action="store_true", help="with --resume: wait until the run stops, showing progress"
    )


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('expected a JSON object, e.g. {"to": "carol@example.com"}')
    return value


async def approve_interruption(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    response = await client.approve_and_resume(
        args.run,
        args.interruption,
        always=args.always,
        arguments=args.arguments,
        decided_by=args.decided_by,
        resume=args.resume,
    )
    return await _decided(client, args, output, response.interruption, response.run)


async def reject_interruption(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    response = await client.reject_and_resume(
        args.run,
        args.interruption,
        args.message,
        always=args.always,
        decided_by=args.decided_by,
        resume=args.resume,
    )
    return await _decided(client, args, output, response.interruption, response.run)


async def _decided(
    client: TimestepClient,
    args: argparse.Namespace,
    output: Output,
    interruption: runs_pb2.Interruption,
    run: runs_pb2.Run,
) -> int:
    """Print the decision; with --resume, the run too (followed until it stops, with --wait)."""
    if not args.resume:
        output.result(interruption, format_interruption(interruption))
        return OK
    if args.wait and run.status != runs_pb2.RUN_STATUS_INTERRUPTED:
        run = await wait_for(client, run, run.last_sequence)
    output.result(run, f"{format_interruption(interruption)}\n{format_run(run)}")
    return exit_code_for_run(run) if args.wait else OK


async def resume_run(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    run = await client.resume(args.run)
    if args.wait:
        run = await wait_for(client, run, run.last_sequence)
    output.result(run, format_run(run))
    return exit_code_for_run(run) if args.wait else OK
