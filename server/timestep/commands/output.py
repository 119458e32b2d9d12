"""Rendering results for people or scripts (`--json`), the progress display, and exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import textwrap
from typing import Any, Final, TextIO

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from timestep_client.v1 import runs_pb2

# ----- exit codes ------------------------------------------------------------------------------

OK: Final = 0
RUN_FAILED: Final = 1  # the run ended FAILED or CANCELLED
USAGE: Final = 2  # argparse's own code for a bad command line; also a configuration `serve` refuses
RUN_INTERRUPTED: Final = 3  # the run is paused awaiting approval
NOT_FOUND: Final = 4
REFUSED: Final = 5  # the request cannot succeed as it is
UNAVAILABLE: Final = 6  # the service cannot be reached, or did not answer in time
OTHER_ERROR: Final = 7  # any other gRPC error
NOT_AUTHENTICATED: Final = 8  # no API key, or a wrong one
INTERRUPTED_BY_USER: Final = 130

# Every status code, chosen one by one (README's exit code table lists them the same way; a test
# compares the two).
_CODE_EXITS: Final = {
    grpc.StatusCode.OK: OK,
    grpc.StatusCode.NOT_FOUND: NOT_FOUND,
    # The request itself is wrong or does not fit the run's state: retrying it as is won't help.
    grpc.StatusCode.INVALID_ARGUMENT: REFUSED,
    grpc.StatusCode.FAILED_PRECONDITION: REFUSED,
    grpc.StatusCode.ALREADY_EXISTS: REFUSED,
    grpc.StatusCode.OUT_OF_RANGE: REFUSED,
    # Worth retrying later, like a health check of a service that is down or hanging.
    grpc.StatusCode.UNAVAILABLE: UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED: NOT_AUTHENTICATED,
    grpc.StatusCode.CANCELLED: OTHER_ERROR,
    grpc.StatusCode.UNKNOWN: OTHER_ERROR,
    grpc.StatusCode.PERMISSION_DENIED: OTHER_ERROR,
    grpc.StatusCode.RESOURCE_EXHAUSTED: OTHER_ERROR,
    grpc.StatusCode.ABORTED: OTHER_ERROR,
    grpc.StatusCode.UNIMPLEMENTED: OTHER_ERROR,
    grpc.StatusCode.INTERNAL: OTHER_ERROR,
    grpc.StatusCode.DATA_LOSS: OTHER_ERROR,
}

_MEANINGS: Final = {
    OK: "success",
    RUN_FAILED: "the run ended FAILED or CANCELLED (runs create/resume --wait, runs events)",
    USAGE: "usage error: a bad command line, or a configuration serve cannot start with",
    RUN_INTERRUPTED: "the run is INTERRUPTED, awaiting approval (runs create/resume --wait)",
    NOT_FOUND: "not found",
    REFUSED: "the request was refused",
    UNAVAILABLE: "the service cannot be reached, or did not answer in time",
    OTHER_ERROR: "any other gRPC error",
    NOT_AUTHENTICATED: "not authenticated: the service needs an API key (--api-key / TIMESTEP_API_KEY) "
    "or refused it",
}


def _describe_exit(code: int) -> str:
    statuses = [status.name for status, exit in _CODE_EXITS.items() if exit == code and code != OK]
    meaning = f"{_MEANINGS[code]} ({', '.join(statuses)})" if statuses else _MEANINGS[code]
    return textwrap.fill(meaning, width=96, initial_indent=f"  {code}  ", subsequent_indent="     ")


EXIT_CODES: Final = "Exit codes:\n" + "\n".join(_describe_exit(code) for code in _MEANINGS) + "\n"


def exit_code_for(code: grpc.StatusCode) -> int:
    return _CODE_EXITS[code]


def exit_code_for_run(run: runs_pb2.Run) -> int:
    if run.status in (runs_pb2.RUN_STATUS_FAILED, runs_pb2.RUN_STATUS_CANCELLED):
        return RUN_FAILED
    if run.status == runs_pb2.RUN_STATUS_INTERRUPTED:
        return RUN_INTERRUPTED
    return OK


def describe_error(error: grpc.aio.AioRpcError) -> str:
    """`CODE: message` plus the ErrorInfo reason and BadRequest field violations, if sent."""
    code = error.code()
    name = code.name if code is not None else "UNKNOWN"
    text = f"{name}: {error.details() or ''}".rstrip(": ")
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(info):
                text += f" (reason: {info.reason})"
            elif detail.Unpack(bad_request):
                for violation in bad_request.field_violations:
                    text += f"\n  field {violation.field}: {violation.description}"
    return text


# ----- rendering -------------------------------------------------------------------------------


def to_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def status_name(status: int) -> str:
    return runs_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_")


def interruption_status_name(status: int) -> str:
    return runs_pb2.InterruptionStatus.Name(status).removeprefix("INTERRUPTION_STATUS_")


class Output:
    """Writes each result to stdout: one JSON object (`--json`) or human text."""

    def __init__(self, json_mode: bool, stdout: TextIO | None = None) -> None:
        self.json = json_mode
        self.stdout = stdout or sys.stdout

    def result(self, message: Message | dict[str, Any], human: str) -> None:
        if self.json:
            data = to_dict(message) if isinstance(message, Message) else message
            self.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        elif human:
            self.stdout.write(human if human.endswith("\n") else human + "\n")
        self.stdout.flush()

    def text(self, text: str) -> None:
        """Human-only text written as is (text deltas): nothing in `--json` mode."""
        if not self.json:
            self.stdout.write(text)
            self.stdout.flush()


def format_interruption(interruption: runs_pb2.Interruption) -> str:
    line = (
        f"interruption {interruption.id}  {interruption_status_name(interruption.status)}  "
        f"{interruption.tool_name}({interruption.arguments_json})"
    )
    if interruption.approved_arguments_json:
        line += f"  edited to ({interruption.approved_arguments_json})"
    if interruption.expired:
        line += "  (approval expired)"
    if interruption.message:
        line += f"  message: {interruption.message}"
    return line


def format_run(run: runs_pb2.Run) -> str:
    lines = [f"run {run.id}  {status_name(run.status)}  agent={run.agent}"]
    if run.model:
        lines[0] += f" model={run.model}"
    if run.session_id:
        lines[0] += f" session={run.session_id}"
    for interruption in run.interruptions:
        lines.append("  " + format_interruption(interruption))
    if run.HasField("error") and (run.error.code or run.error.message):
        lines.append(f"  error: {run.error.code}: {run.error.message}")
    if run.final_output:
        lines.append(f"  output: {run.final_output}")
    if run.status == runs_pb2.RUN_STATUS_INTERRUPTED:
        pending = [i for i in run.interruptions if i.status == runs_pb2.INTERRUPTION_STATUS_PENDING]
        if pending:
            lines.append(
                f"  awaiting approval: timestep approve {run.id} {pending[0].id}  "
                f"(or reject), then timestep resume {run.id}"
            )
    return "\n".join(lines)


def describe_event(event: runs_pb2.RunEvent) -> str | None:
    """One line about a stored event (None for text deltas, which are shown inline)."""
    kind = event.WhichOneof("kind")
    prefix = f"#{event.sequence} " if event.sequence else ""
    if kind == "status_changed":
        reason = f" ({event.status_changed.reason})" if event.status_changed.reason else ""
        return f"{prefix}status {status_name(event.status_changed.status)}{reason}"
    if kind == "message_output":
        return f"{prefix}message from {event.message_output.agent}: {event.message_output.text}"
    if kind == "tool_called":
        called = event.tool_called
        return f"{prefix}tool {called.tool_name}({called.arguments_json}) called by {called.agent}"
    if kind == "tool_output":
        return f"{prefix}tool output [{event.tool_output.call_id}]: {event.tool_output.output}"
    if kind == "handoff":
        return f"{prefix}handoff {event.handoff.from_agent} -> {event.handoff.to_agent}"
    if kind == "interruption":
        return f"{prefix}{format_interruption(event.interruption)}"
    if kind == "interruption_decided":
        return f"{prefix}decided: {format_interruption(event.interruption_decided)}"
    if kind == "final_output":
        return f"{prefix}final output: {event.final_output.output}"
    if kind == "error":
        return f"{prefix}error {event.error.code}: {event.error.message}"
    if kind == "usage":
        total = event.usage.total
        return f"{prefix}usage: {total.total_tokens} tokens in {total.requests} requests"
    if kind == "reasoning":
        return f"{prefix}reasoning by {event.reasoning.agent}"
    if kind == "text_delta":
        return None
    return f"{prefix}{kind}"


# ----- progress --------------------------------------------------------------------------------

SPINNER: Final = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Progress:
    """What a waiting command is doing, on stderr: a spinner and status line on a terminal,
    plain lines otherwise. Fed by the run's events."""

    def __init__(self, run_id: str, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.run_id = run_id
        self.status = "waiting"
        self._frame = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Progress:
        if self.tty:
            self._task = asyncio.create_task(self._spin())
        else:
            self.stream.write(f"waiting for run {self.run_id}\n")
            self.stream.flush()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    async def _spin(self) -> None:
        while True:
            self._draw()
            await asyncio.sleep(0.1)  # animation only; nothing waits on it

    def _draw(self) -> None:
        frame = SPINNER[self._frame % len(SPINNER)]
        self._frame += 1
        self.stream.write(f"\r\x1b[K{frame} run {self.run_id}: {self.status}")
        self.stream.flush()

    def event(self, event: runs_pb2.RunEvent) -> None:
        kind = event.WhichOneof("kind")
        if kind == "text_delta":
            if self.tty and not self.status.startswith("writing"):
                self.status = "writing…"
                self._draw()
            return
        line = describe_event(event)
        if line is None:
            return
        if kind == "status_changed":
            self.status = status_name(event.status_changed.status)
        elif kind == "tool_called":
            self.status = f"calling {event.tool_called.tool_name}"
        if self.tty:
            self._draw()
        else:
            self.stream.write(f"{line}\n")
            self.stream.flush()
