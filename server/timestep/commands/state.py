"""`timestep state export|import`: a paused run's RunState JSON, in Python or TypeScript form."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from timestep_client import TimestepClient
from timestep_client.v1 import runs_pb2

from timestep.commands.output import OK, Output, format_run, to_dict

FORMATS = {"python": runs_pb2.STATE_FORMAT_PYTHON, "typescript": runs_pb2.STATE_FORMAT_TYPESCRIPT}


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = commands.add_parser("state", help="export or import a paused run's RunState", parents=[common])
    sub = group.add_subparsers(dest="state_command", required=True, metavar="COMMAND")

    export = sub.add_parser(
        "export",
        help="write a paused run's RunState JSON",
        description="Write a paused (INTERRUPTED) run's RunState JSON to stdout or FILE, in the "
        "form the Python or TypeScript Agents SDK reads.",
        parents=[common],
    )
    export.add_argument("run", metavar="RUN")
    export.add_argument("--format", choices=sorted(FORMATS), default="python", help="(default: %(default)s)")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(handler=export_state)

    imported = sub.add_parser(
        "import",
        help="start a paused run from RunState JSON",
        description="Create a new INTERRUPTED run from Python or TypeScript RunState JSON "
        "(the format is detected); decide its interruptions and resume it as usual.",
        parents=[common],
    )
    imported.add_argument("agent", metavar="AGENT")
    imported.add_argument("file", metavar="FILE", help="the RunState JSON file, or - for stdin")
    imported.add_argument("--session", default="", help="the conversation session of the new run")
    imported.set_defaults(handler=import_state)


async def export_state(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    response = await client.get_state(args.run, FORMATS[args.format])
    if args.output is None:
        # The state itself is the result, in both modes: it is JSON already.
        sys.stdout.write(response.state_json + "\n")
        sys.stdout.flush()
        return OK
    write_file(args.output, response.state_json + "\n")
    summary = to_dict(response)
    del summary["state_json"]
    summary["file"] = args.output
    output.result(
        summary,
        f"wrote {args.format} RunState of run {args.run} (agent {response.agent}, schema "
        f"{response.schema_version}) to {args.output}",
    )
    return OK


async def import_state(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    state_json = read_file(args.file)
    run = await client.import_state(args.agent, state_json, session_id=args.session)
    output.result(run, format_run(run))
    return OK


# A command line tool blocks on its files; nothing else runs on its event loop meanwhile.
def read_file(name: str) -> str:
    return sys.stdin.read() if name == "-" else Path(name).read_text()


def write_file(name: str, text: str) -> None:
    Path(name).write_text(text)
