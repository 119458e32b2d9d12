"""`timestep approve|reject|resume`: deciding a paused run's interruptions and resuming it."""

from __future__ import annotations

import argparse

from timestep_client import TimestepClient

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


async def approve_interruption(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    interruption = await client.approve(args.run, args.interruption, always=args.always)
    output.result(interruption, format_interruption(interruption))
    return OK


async def reject_interruption(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    interruption = await client.reject(args.run, args.interruption, args.message, always=args.always)
    output.result(interruption, format_interruption(interruption))
    return OK


async def resume_run(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    run = await client.resume(args.run)
    if args.wait:
        run = await wait_for(client, run, run.last_sequence)
    output.result(run, format_run(run))
    return exit_code_for_run(run) if args.wait else OK
