"""Domain ⇄ protobuf conversion (request validation is `timestep.api.validation`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from timestep_client.v1 import agents_pb2, runs_pb2

from timestep.domain import (
    EventKind,
    Interruption,
    InterruptionStatus,
    Run,
    RunError,
    RunEvent,
    RunStatus,
    Usage,
)
from timestep.errors import InvalidArgumentError
from timestep.runtime.registry import AgentInfo
from timestep.state.document import PYTHON

# ----- enums ---------------------------------------------------------------------------------


# Enum fields accept their value names, which keeps the mapping readable: RunStatus.QUEUED ⇄
# "RUN_STATUS_QUEUED".
def run_status_to_proto(status: RunStatus) -> str:
    return f"RUN_STATUS_{status.name}"


def run_status_from_proto(value: int, field: str = "status") -> RunStatus | None:
    """None for UNSPECIFIED (no filter); INVALID_ARGUMENT for numbers the enum does not have."""
    if value == runs_pb2.RUN_STATUS_UNSPECIFIED:
        return None
    if value not in runs_pb2.RunStatus.values():
        names = ", ".join(RunStatus.__members__)
        raise InvalidArgumentError(f"{field} {value} is not a RunStatus; use one of {names}.", field=field)
    return RunStatus[runs_pb2.RunStatus.Name(value).removeprefix("RUN_STATUS_")]


def interruption_status_to_proto(status: InterruptionStatus) -> str:
    return f"INTERRUPTION_STATUS_{status.name}"


def state_format_from_proto(value: int) -> str:
    """The codec's format name ("python", "typescript"); PYTHON for UNSPECIFIED."""
    if value == runs_pb2.STATE_FORMAT_UNSPECIFIED:
        return PYTHON
    if value not in runs_pb2.StateFormat.values():
        raise InvalidArgumentError(
            f"format {value} is not a StateFormat; use STATE_FORMAT_PYTHON or STATE_FORMAT_TYPESCRIPT.",
            field="format",
        )
    return runs_pb2.StateFormat.Name(value).removeprefix("STATE_FORMAT_").lower()


def state_format_to_proto(state_format: str) -> str:
    return f"STATE_FORMAT_{state_format.upper()}"


# ----- messages ------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def proto_string(value: str, *, json_text: bool = False) -> str:
    """`value` as a protobuf string can carry it (valid UTF-8). Content is stored exactly, but a
    lone surrogate (from a "\\ud800" JSON escape) has no UTF-8 form: it becomes U+FFFD, or, in
    JSON text (where it can only be inside a string), the `\\udXXX` escape that means the same."""
    if value.isascii() or _SURROGATE.search(value) is None:
        return value
    if json_text:
        return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", value)
    return _SURROGATE.sub("\ufffd", value)


def _proto_strings(data: dict[str, Any]) -> dict[str, Any]:
    """`data`'s string values as `proto_string` makes them (fields named `*_json` are JSON)."""
    return {
        key: proto_string(value, json_text=key.endswith("_json")) if isinstance(value, str) else value
        for key, value in data.items()
    }


def timestamp(value: datetime | str | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(value) if isinstance(value, str) else value)
    return stamp


def usage_to_proto(usage: Usage | dict[str, Any]) -> runs_pb2.Usage:
    values = usage.to_dict() if isinstance(usage, Usage) else usage
    return runs_pb2.Usage(**values)


def model_call_to_proto(call: dict[str, Any]) -> runs_pb2.ModelCallUsage:
    return runs_pb2.ModelCallUsage(
        agent=proto_string(call["agent"]),
        model=proto_string(call["model"]),
        usage=usage_to_proto(call["usage"]),
        priced=call["priced"],
        time=timestamp(call["time"]),
    )


def error_to_proto(error: RunError | None) -> runs_pb2.RunError | None:
    return runs_pb2.RunError(code=error.code, message=proto_string(error.message)) if error else None


def interruption_to_proto(interruption: Interruption | dict[str, Any]) -> runs_pb2.Interruption:
    data = _proto_strings(
        interruption.to_payload() if isinstance(interruption, Interruption) else interruption
    )
    return runs_pb2.Interruption(
        id=data["id"],
        run_id=data["run_id"],
        agent=data["agent"],
        tool_name=data["tool_name"],
        call_id=data["call_id"],
        arguments_json=data["arguments_json"],
        status=interruption_status_to_proto(InterruptionStatus(data["status"])),
        always=data["always"],
        message=data["message"],
        create_time=timestamp(data["create_time"]),
        decide_time=timestamp(data["decide_time"]),
        segment=data["segment"],
    )


def run_to_proto(run: Run) -> runs_pb2.Run:
    return runs_pb2.Run(
        id=run.id,
        agent=proto_string(run.agent),
        status=run_status_to_proto(run.status),
        session_id=proto_string(run.session_id),
        model=proto_string(run.model),
        final_output=proto_string(run.final_output),
        interruptions=[interruption_to_proto(i) for i in run.interruptions],
        usage=usage_to_proto(run.usage),
        error=error_to_proto(run.error),
        metadata={proto_string(key): proto_string(value) for key, value in run.metadata.items()},
        create_time=timestamp(run.create_time),
        update_time=timestamp(run.update_time),
        request_id=proto_string(run.request_id),
        current_agent=proto_string(run.current_agent),
        last_sequence=run.last_sequence,
        segment_count=run.segment_count,
        queue=run.queue_name if run.status is RunStatus.QUEUED else "",
        queue_position=run.queue_position,
        keep=run.keep,
    )


def event_to_proto(event: RunEvent) -> runs_pb2.RunEvent:
    message = runs_pb2.RunEvent(
        sequence=event.sequence, time=timestamp(event.time), run_id=event.run_id, segment=event.segment
    )
    p = _proto_strings(event.payload)
    match event.kind:
        case EventKind.STATUS_CHANGED:
            message.status_changed.CopyFrom(
                runs_pb2.StatusChanged(status=run_status_to_proto(RunStatus(p["status"])), reason=p["reason"])
            )
        case EventKind.MESSAGE_OUTPUT:
            message.message_output.CopyFrom(runs_pb2.MessageOutput(**p))
        case EventKind.TOOL_CALLED:
            message.tool_called.CopyFrom(runs_pb2.ToolCalled(**p))
        case EventKind.TOOL_OUTPUT:
            message.tool_output.CopyFrom(runs_pb2.ToolOutput(**p))
        case EventKind.HANDOFF:
            message.handoff.CopyFrom(runs_pb2.Handoff(**p))
        case EventKind.INTERRUPTION:
            message.interruption.CopyFrom(interruption_to_proto(p))
        case EventKind.INTERRUPTION_DECIDED:
            message.interruption_decided.CopyFrom(interruption_to_proto(p))
        case EventKind.FINAL_OUTPUT:
            message.final_output.CopyFrom(runs_pb2.FinalOutput(**p))
        case EventKind.ERROR:
            message.error.CopyFrom(runs_pb2.RunError(**p))
        case EventKind.USAGE:
            message.usage.CopyFrom(
                runs_pb2.UsageReported(
                    segment=usage_to_proto(p["segment"]),
                    total=usage_to_proto(p["total"]),
                    calls=[model_call_to_proto(call) for call in p.get("calls", [])],
                )
            )
        case EventKind.TEXT_DELTA:
            message.text_delta.CopyFrom(runs_pb2.TextDelta(**p))
        case EventKind.REASONING:
            message.reasoning.CopyFrom(runs_pb2.ReasoningOutput(**p))
    return message


def agent_to_proto(info: AgentInfo) -> agents_pb2.Agent:
    return agents_pb2.Agent(
        name=info.name,
        instructions=info.instructions,
        model=info.model,
        tools=[
            agents_pb2.Tool(
                name=t.name,
                description=t.description,
                needs_approval=t.needs_approval,
                parameters_json=t.parameters_json,
            )
            for t in info.tools
        ],
        handoffs=info.handoffs,
    )
