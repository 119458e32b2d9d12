"""`timestep schedules list|create|get|pause|resume|delete`."""

from __future__ import annotations

import argparse

from timestep_client import TimestepClient
from timestep_client.v1 import schedules_pb2

from timestep.commands.output import OK, Output
from timestep.commands.runs import key_value


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = commands.add_parser("schedules", help="runs started on a cron schedule", parents=[common])
    sub = group.add_subparsers(dest="schedules_command", required=True, metavar="COMMAND")

    listing = sub.add_parser("list", help="list the schedules, by id", parents=[common])
    listing.add_argument(
        "--limit", type=int, default=50, help="at most this many schedules (default: %(default)s)"
    )
    listing.add_argument("--page-token", default="", help="continue a listing (from next_page_token)")
    listing.set_defaults(handler=list_schedules)

    create = sub.add_parser("create", help="create a schedule", parents=[common])
    create.add_argument("schedule", metavar="ID", help="the schedule's id (yours to choose)")
    create.add_argument("--cron", required=True, help='e.g. "0 9 * * 1-5" (seconds field optional)')
    create.add_argument("--agent", required=True)
    create.add_argument("--input", required=True, help="the message each run starts with")
    create.add_argument("--timezone", default="", help="IANA zone for the cron (default: UTC)")
    create.add_argument("--model", default="", help="run on this model instead of the agent's")
    create.add_argument(
        "--metadata", action="append", default=[], type=key_value, metavar="KEY=VALUE", help="repeatable"
    )
    create.set_defaults(handler=create_schedule)

    for name, help_text, handler in (
        ("get", "show a schedule", get_schedule),
        ("pause", "stop a schedule firing until resumed", pause_schedule),
        ("resume", "let a paused schedule fire again", resume_schedule),
        ("delete", "delete a schedule", delete_schedule),
    ):
        command = sub.add_parser(name, help=help_text, parents=[common])
        command.add_argument("schedule", metavar="ID")
        command.set_defaults(handler=handler)


def format_schedule(schedule: schedules_pb2.Schedule) -> str:
    state = schedules_pb2.ScheduleState.Name(schedule.state).removeprefix("SCHEDULE_STATE_")
    line = f"{schedule.id}  {state}  cron={schedule.cron!r}"
    if schedule.timezone:
        line += f" tz={schedule.timezone}"
    line += f"  agent={schedule.agent}  input={schedule.input!r}"
    if schedule.HasField("last_fire_time"):
        line += f"  last fired {schedule.last_fire_time.ToDatetime().isoformat(timespec='seconds')}Z"
    if schedule.missed_fires:
        missed = schedule.last_missed_time.ToDatetime().isoformat(timespec="seconds")
        line += f"  missed {schedule.missed_fires} firing(s) (--max-active-runs), last {missed}Z"
    return line


async def list_schedules(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    response = await client.schedules.ListSchedules(
        schedules_pb2.ListSchedulesRequest(page_size=args.limit, page_token=args.page_token)
    )
    lines = [format_schedule(schedule) for schedule in response.schedules] or ["no schedules"]
    if response.next_page_token:
        lines.append(f"more: --page-token {response.next_page_token}")
    output.result(response, "\n".join(lines))
    return OK


async def create_schedule(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    request = schedules_pb2.CreateScheduleRequest(
        schedule_id=args.schedule,
        cron=args.cron,
        timezone=args.timezone,
        agent=args.agent,
        input=args.input,
        model=args.model,
        metadata=dict(args.metadata),
    )
    schedule = (await client.schedules.CreateSchedule(request)).schedule
    output.result(schedule, format_schedule(schedule))
    return OK


async def get_schedule(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    request = schedules_pb2.GetScheduleRequest(schedule_id=args.schedule)
    schedule = (await client.schedules.GetSchedule(request)).schedule
    output.result(schedule, format_schedule(schedule))
    return OK


async def pause_schedule(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    request = schedules_pb2.PauseScheduleRequest(schedule_id=args.schedule)
    schedule = (await client.schedules.PauseSchedule(request)).schedule
    output.result(schedule, format_schedule(schedule))
    return OK


async def resume_schedule(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    request = schedules_pb2.ResumeScheduleRequest(schedule_id=args.schedule)
    schedule = (await client.schedules.ResumeSchedule(request)).schedule
    output.result(schedule, format_schedule(schedule))
    return OK


async def delete_schedule(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    await client.schedules.DeleteSchedule(schedules_pb2.DeleteScheduleRequest(schedule_id=args.schedule))
    output.result({"schedule_id": args.schedule, "deleted": True}, f"deleted schedule {args.schedule}")
    return OK
