"""`timestep sessions list|get|items|delete`."""

from __future__ import annotations

import argparse

from timestep_client import TimestepClient
from timestep_client.v1 import sessions_pb2

from timestep.commands.output import OK, Output


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = commands.add_parser("sessions", help="list, read and delete conversations", parents=[common])
    sub = group.add_subparsers(dest="sessions_command", required=True, metavar="COMMAND")

    listing = sub.add_parser("list", help="list sessions, newest activity first", parents=[common])
    listing.add_argument("--agent", default="", help="only sessions with a run of this agent")
    listing.add_argument(
        "--limit", type=int, default=20, help="at most this many sessions (default: %(default)s)"
    )
    listing.add_argument("--page-token", default="", help="continue a listing (from next_page_token)")
    listing.set_defaults(handler=list_sessions)

    get = sub.add_parser("get", help="show one session", parents=[common])
    get.add_argument("session", metavar="SESSION")
    get.set_defaults(handler=get_session)

    items = sub.add_parser("items", help="print a session's history, oldest first", parents=[common])
    items.add_argument("session", metavar="SESSION")
    items.add_argument("--limit", type=int, default=50, help="at most this many items (default: %(default)s)")
    items.add_argument("--page-token", default="", help="continue a listing (from next_page_token)")
    items.set_defaults(handler=list_items)

    delete = sub.add_parser(
        "delete", help="delete a session's history (and with --runs, its runs)", parents=[common]
    )
    delete.add_argument("session", metavar="SESSION")
    delete.add_argument("--runs", action="store_true", help="delete the session's runs too")
    delete.add_argument("--force", action="store_true", help="cancel its queued or running runs first")
    delete.add_argument("--allow-missing", action="store_true", help="a session that does not exist is fine")
    delete.set_defaults(handler=delete_session)


def format_session(session: sessions_pb2.Session) -> str:
    last = session.last_activity_time.ToDatetime().isoformat(timespec="seconds")
    return (
        f"{session.id}  {session.run_count} run(s)  {session.item_count} item(s)  "
        f"agents={','.join(session.agents) or '-'}  last active {last}Z"
    )


async def list_sessions(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    response = await client.list_sessions(agent=args.agent, page_size=args.limit, page_token=args.page_token)
    lines = [format_session(session) for session in response.sessions] or ["no sessions"]
    if response.next_page_token:
        lines.append(f"more: --page-token {response.next_page_token}")
    output.result(response, "\n".join(lines))
    return OK


async def get_session(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    session = await client.get_session(args.session)
    output.result(session, format_session(session))
    return OK


async def list_items(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    response = await client.list_session_items(args.session, page_size=args.limit, page_token=args.page_token)
    lines = [f"{item.run_id or '-'}  {item.item_json}" for item in response.items] or ["no items"]
    if response.next_page_token:
        lines.append(f"more: --page-token {response.next_page_token}")
    output.result(response, "\n".join(lines))
    return OK


async def delete_session(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    response = await client.delete_session(
        args.session, delete_runs=args.runs, force=args.force, allow_missing=args.allow_missing
    )
    text = f"deleted session {args.session}: {response.deleted_items} item(s), {response.deleted_runs} run(s)"
    output.result(response, text)
    return OK
