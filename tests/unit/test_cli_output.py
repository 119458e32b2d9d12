"""The CLI's rendering helpers: the progress display on a terminal and in a pipe, and exit codes."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import grpc
from timestep.commands.output import EXIT_CODES, REFUSED, UNAVAILABLE, Progress, exit_code_for
from timestep.commands.schedules import format_schedule
from timestep_client.v1 import runs_pb2, schedules_pb2

from timestep_testing.harness import REPO


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def status_event(status: runs_pb2.RunStatus, sequence: int) -> runs_pb2.RunEvent:
    return runs_pb2.RunEvent(sequence=sequence, status_changed=runs_pb2.StatusChanged(status=status))


async def test_on_a_terminal_progress_redraws_one_status_line_and_clears_it() -> None:
    terminal = Terminal()
    async with Progress("run_1", terminal) as progress:
        progress.event(status_event(runs_pb2.RUN_STATUS_RUNNING, 1))
        progress.event(runs_pb2.RunEvent(text_delta=runs_pb2.TextDelta(delta="Hi")))

    written = terminal.getvalue()
    assert "\rrun_1" not in written  # every redraw starts with the spinner frame
    assert "run run_1: RUNNING" in written
    assert "run run_1: writing…" in written
    assert "\n" not in written  # one line, redrawn in place
    assert written.endswith("\r\x1b[K")  # and cleared at the end


async def test_in_a_pipe_progress_prints_plain_lines_without_deltas() -> None:
    pipe = io.StringIO()
    async with Progress("run_2", pipe) as progress:
        progress.event(status_event(runs_pb2.RUN_STATUS_RUNNING, 3))
        progress.event(runs_pb2.RunEvent(text_delta=runs_pb2.TextDelta(delta="Hi")))

    assert pipe.getvalue().splitlines() == ["waiting for run run_2", "#3 status RUNNING"]
    assert "\x1b" not in pipe.getvalue()


def readme_exit_codes() -> dict[str, int]:
    """The status codes named in each row of README.md's table of exit codes."""
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("Exit codes:") :].split("\n\n")[1]
    documented: dict[str, int] = {}
    for row in table.splitlines()[2:]:
        exit_code, meaning = row.strip("|").split("|", 1)
        for status in re.findall(r"`([A-Z_]+)`", meaning):
            assert status not in documented, f"{status} is in two rows of README's exit codes"
            documented[status] = int(exit_code)
    return documented


def test_every_status_code_exits_as_the_readme_table_says() -> None:
    documented = readme_exit_codes()
    failures = [code for code in grpc.StatusCode if code != grpc.StatusCode.OK]

    assert set(documented) == {code.name for code in failures}
    assert {code.name: exit_code_for(code) for code in failures} == documented
    assert exit_code_for(grpc.StatusCode.FAILED_PRECONDITION) == REFUSED
    assert exit_code_for(grpc.StatusCode.DEADLINE_EXCEEDED) == UNAVAILABLE


def test_help_lists_the_same_exit_codes() -> None:
    listed: dict[str, int] = {}
    for entry in re.split(r"\n  (?=\d)", EXIT_CODES.removeprefix("Exit codes:\n  ")):
        statuses = re.search(r"\(([A-Z_,\s]+)\)$", entry.strip())
        for status in re.split(r",\s+", statuses.group(1)) if statuses else ():
            listed[status] = int(entry.split()[0])

    assert listed == readme_exit_codes()


def test_a_schedule_that_skipped_firings_says_how_many_and_why() -> None:
    schedule = schedules_pb2.Schedule(
        id="nightly", cron="0 3 * * *", agent="assistant", input="Hi", state="SCHEDULE_STATE_ACTIVE"
    )
    quiet = format_schedule(schedule)
    schedule.missed_fires = 2
    schedule.last_missed_time.FromDatetime(datetime(2026, 12, 3, 3, 0, tzinfo=UTC))

    assert "missed" not in quiet
    assert format_schedule(schedule).endswith(
        "missed 2 firing(s) (--max-active-runs), last 2026-12-03T03:00:00Z"
    )
