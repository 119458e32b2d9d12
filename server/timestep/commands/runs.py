"""`timestep runs list|get|events|cancel|create|delete|keep`, and waiting for a run (with progress)."""

from __future__ import annotations

import argparse
from datetime import timedelta

from timestep_client import TimestepClient
from timestep_client.v1 import runs_pb2

from timestep.commands.output import (
    OK,
    RUN_FAILED,
    Output,
    Progress,
    describe_event,
    exit_code_for_run,
    format_run,
    status_name,
)

STATUSES = [name.removeprefix("RUN_STATUS_").lower() for name in runs_pb2.RunStatus.keys()[1:]]
STRATEGIES = [
    name.removeprefix("MULTITASK_STRATEGY_").lower() for name in runs_pb2.MultitaskStrategy.keys()[1:]
]


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = commands.add_parser(
        "runs", help="list, inspect, follow, create and cancel runs", parents=[common]
    )
    sub = group.add_subparsers(dest="runs_command", required=True, metavar="COMMAND")

    listing = sub.add_parser("list", help="list runs, newest first", parents=[common])
    listing.add_argument("--agent", default="", help="only this agent's runs")
    listing.add_argument("--status", choices=STATUSES, help="only runs in this status")
    listing.add_argument("--session", default="", help="only this session's runs")
    listing.add_argument(
        "--limit", type=int, default=20, help="at most this many runs (default: %(default)s)"
    )
    listing.add_argument("--page-token", default="", help="continue a listing (from next_page_token)")
    listing.set_defaults(handler=list_runs)

    get = sub.add_parser("get", help="show one run", parents=[common])
    get.add_argument("run", metavar="RUN")
    get.set_defaults(handler=get_run)

    events = sub.add_parser(
        "events",
        help="print a run's events, following it until it stops",
        description="Print a run's events and follow it until it stops (completes, fails, is "
        "cancelled or pauses for approval). Exit code 1 if it ended FAILED or CANCELLED.",
        parents=[common],
    )
    events.add_argument("run", metavar="RUN")
    events.add_argument("--after", type=int, default=0, metavar="N", help="only events after sequence N")
    events.set_defaults(handler=follow_events)

    cancel = sub.add_parser("cancel", help="cancel a run", parents=[common])
    cancel.add_argument("run", metavar="RUN")
    cancel.add_argument("--reason", default="", help="why (stored with the run)")
    cancel.set_defaults(handler=cancel_run)

    delete = sub.add_parser(
        "delete", help="delete a run and everything stored for it (not while it runs)", parents=[common]
    )
    delete.add_argument("run", metavar="RUN")
    delete.add_argument("--force", action="store_true", help="cancel a queued or running run first")
    delete.add_argument("--allow-missing", action="store_true", help="a run that does not exist is fine")
    delete.set_defaults(handler=delete_run)

    keep = sub.add_parser("keep", help="exempt a run from retention (or --off: no longer)", parents=[common])
    keep.add_argument("run", metavar="RUN")
    keep.add_argument("--off", action="store_true", help="let retention delete it again")
    keep.set_defaults(handler=keep_run)

    create = sub.add_parser(
        "create",
        help="start a run",
        description="Start a run. With --wait, show its progress and exit when it stops: 0 "
        "completed, 1 failed or cancelled, 3 paused awaiting approval.",
        parents=[common],
    )
    create.add_argument("agent", metavar="AGENT")
    create.add_argument("input", metavar="INPUT", help="the user's message")
    create.add_argument("--session", default="", help="continue this conversation session")
    create.add_argument("--model", default="", help="run every agent on this model")
    create.add_argument("--request-id", default="", help="idempotency key: a retry returns the same run")
    create.add_argument(
        "--metadata", action="append", default=[], type=key_value, metavar="KEY=VALUE", help="repeatable"
    )
    create.add_argument("--wait", action="store_true", help="wait until the run stops, showing progress")
    create.add_argument("--keep", action="store_true", help="never delete the run by retention")
    create.add_argument(
        "--multitask-strategy",
        choices=STRATEGIES,
        help="if the session has an active run: reject, enqueue (wait for it), interrupt (cancel "
        "it) or rollback (cancel it and remove its items); default: the service's",
    )
    create.add_argument(
        "--approval-timeout",
        type=float,
        metavar="SECONDS",
        help="reject each tool call awaiting approval by itself after this long (at least 1)",
    )
    create.add_argument(
        "--auto-resume-on-expiry", action="store_true", help="resume the run by itself once approvals expire"
    )
    create.add_argument(
        "--approval-expiry-message",
        default="",
        metavar="TEXT",
        help="what the model is told when one expires",
    )
    create.add_argument(
        "--webhook-url",
        default="",
        metavar="URL",
        help="also POST this run's events there, signed (get the secret with "
        "`timestep webhooks rotate <the run's webhook_id>`)",
    )
    create.set_defaults(handler=create_run)


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, value


async def list_runs(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    status = runs_pb2.RunStatus.Value(f"RUN_STATUS_{args.status.upper()}") if args.status else 0
    response = await client.list_runs(
        agent=args.agent,
        status=status,  # type: ignore[arg-type]
        session_id=args.session,
        page_size=args.limit,
        page_token=args.page_token,
    )
    lines = [
        f"{run.id}  {status_name(run.status):<11}  {run.agent:<12}  "
        f"{run.create_time.ToDatetime().isoformat(timespec='seconds')}Z"
        for run in response.runs
    ]
    if not lines:
        lines.append("no runs")
    if response.next_page_token:
        lines.append(f"more: --page-token {response.next_page_token}")
    output.result(response, "\n".join(lines))
    return OK


async def get_run(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    run = await client.get_run(args.run)
    output.result(run, format_run(run))
    return OK


async def follow_events(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    in_text = False
    async for event in client.stream_events(args.run, args.after):
        if output.json:
            output.result(event, "")
            continue
        if event.WhichOneof("kind") == "text_delta":
            output.text(event.text_delta.delta)
            in_text = True
            continue
        line = describe_event(event)
        if line is None:
            continue
        if in_text:
            output.text("\n")
            in_text = False
        output.text(line + "\n")
    if in_text:
        output.text("\n")
    run = await client.get_run(args.run)
    return RUN_FAILED if exit_code_for_run(run) == RUN_FAILED else OK


async def cancel_run(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    run = await client.cancel(args.run, args.reason)
    output.result(run, format_run(run))
    return OK


async def delete_run(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    response = await client.delete_run(args.run, force=args.force, allow_missing=args.allow_missing)
    text = (
        f"deleted run {args.run} ({response.deleted_session_items} session item(s))"
        if response.deleted
        else f"no run {args.run}: nothing to delete"
    )
    output.result(response, text)
    return OK


async def keep_run(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    run = await client.keep_run(args.run, not args.off)
    output.result(run, f"run {run.id} {'kept: retention never deletes it' if run.keep else 'not kept'}")
    return OK


async def wait_for(client: TimestepClient, run: runs_pb2.Run, after_sequence: int = 0) -> runs_pb2.Run:
    """Follow the run's events (showing progress on stderr) until it stops; the stopped run."""
    async with Progress(run.id) as progress:
        async for event in client.stream_events(run.id, after_sequence):
            progress.event(event)
    return await client.get_run(run.id)


async def create_run(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    run = await client.create_run(
        args.agent,
        args.input,
        session_id=args.session,
        model=args.model,
        request_id=args.request_id,
        metadata=dict(args.metadata),
        keep=args.keep,
        multitask_strategy=runs_pb2.MultitaskStrategy.Value(  # type: ignore[arg-type]
            f"MULTITASK_STRATEGY_{(args.multitask_strategy or 'unspecified').upper()}"
        ),
        approval_timeout=timedelta(seconds=args.approval_timeout) if args.approval_timeout else None,
        auto_resume_on_expiry=args.auto_resume_on_expiry,
        approval_expiry_message=args.approval_expiry_message,
        webhook_url=args.webhook_url,
    )
    if args.wait:
        run = await wait_for(client, run)
    output.result(run, format_run(run))
    return exit_code_for_run(run) if args.wait else OK
