"""Domain ⇄ protobuf conversion (request validation is `timestep.api.validation`)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from timestep_client.v1 import agents_pb2, runs_pb2

from timestep.domain import Interruption, InterruptionStatus, ModelCall, Run, RunError, RunStatus, Usage
from timestep.errors import InvalidArgumentError
from timestep.event_types import (
    FinalOutput,
    Handoff,
    InterruptionDecided,
    InterruptionExpired,
    InterruptionRaised,
    MessageOutput,
    Reasoning,
    RunEvent,
    RunFailed,
    StatusChanged,
    TextDelta,
    ToolCalled,
    ToolOutput,
    UsageReported,
)
from timestep.run_feed import FeedCursor, FeedEntry
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


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def duration(value: timedelta | None) -> Duration | None:
    if value is None:
        return None
    proto = Duration()
    proto.FromTimedelta(value)
    return proto


def usage_to_proto(usage: Usage) -> runs_pb2.Usage:
    return runs_pb2.Usage(
        requests=usage.requests,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=usage.cost_usd,
    )


def model_call_to_proto(call: ModelCall) -> runs_pb2.ModelCallUsage:
    return runs_pb2.ModelCallUsage(
        agent=proto_string(call.agent),
        model=proto_string(call.model),
        usage=usage_to_proto(call.usage),
        priced=call.priced,
        time=timestamp(call.time),
    )


def error_to_proto(error: RunError | None) -> runs_pb2.RunError | None:
    return runs_pb2.RunError(code=error.code, message=proto_string(error.message)) if error else None


def interruption_to_proto(interruption: Interruption) -> runs_pb2.Interruption:
    return runs_pb2.Interruption(
        id=interruption.id,
        run_id=interruption.run_id,
        agent=proto_string(interruption.agent),
        tool_name=proto_string(interruption.tool_name),
        call_id=proto_string(interruption.call_id),
        arguments_json=proto_string(interruption.arguments_json, json_text=True),
        status=interruption_status_to_proto(interruption.status),
        always=interruption.always,
        message=proto_string(interruption.message),
        create_time=timestamp(interruption.create_time),
        decide_time=timestamp(interruption.decide_time),
        segment=interruption.segment,
        approved_arguments_json=proto_string(interruption.approved_arguments_json, json_text=True),
        decided_by=proto_string(interruption.decided_by),
        expire_time=timestamp(interruption.expire_time),
        expired=interruption.expired,
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
        webhook_id=run.webhook_id,
        approval_timeout=duration(run.approval.timeout),
        auto_resume_on_expiry=run.approval.auto_resume,
    )


def event_to_proto(event: RunEvent) -> runs_pb2.RunEvent:
    message = runs_pb2.RunEvent(
        sequence=event.sequence, time=timestamp(event.time), run_id=event.run_id, segment=event.segment
    )
    match event.data:
        case StatusChanged(status=status, reason=reason):
            message.status_changed.CopyFrom(
                runs_pb2.StatusChanged(status=run_status_to_proto(status), reason=proto_string(reason))
            )
        case MessageOutput(agent=agent, text=text, item_json=item_json):
            message.message_output.CopyFrom(
                runs_pb2.MessageOutput(
                    agent=proto_string(agent),
                    text=proto_string(text),
                    item_json=proto_string(item_json, json_text=True),
                )
            )
        case ToolCalled() as called:
            message.tool_called.CopyFrom(
                runs_pb2.ToolCalled(
                    agent=proto_string(called.agent),
                    tool_name=proto_string(called.tool_name),
                    call_id=proto_string(called.call_id),
                    arguments_json=proto_string(called.arguments_json, json_text=True),
                    item_json=proto_string(called.item_json, json_text=True),
                )
            )
        case ToolOutput() as output:
            message.tool_output.CopyFrom(
                runs_pb2.ToolOutput(
                    agent=proto_string(output.agent),
                    call_id=proto_string(output.call_id),
                    output=proto_string(output.output),
                    item_json=proto_string(output.item_json, json_text=True),
                )
            )
        case Handoff(from_agent=from_agent, to_agent=to_agent):
            message.handoff.CopyFrom(
                runs_pb2.Handoff(from_agent=proto_string(from_agent), to_agent=proto_string(to_agent))
            )
        case InterruptionRaised(interruption=interruption):
            message.interruption.CopyFrom(interruption_to_proto(interruption))
        case InterruptionDecided(interruption=interruption):
            message.interruption_decided.CopyFrom(interruption_to_proto(interruption))
        case InterruptionExpired(interruption=interruption):
            message.interruption_expired.CopyFrom(interruption_to_proto(interruption))
        case FinalOutput(agent=agent, output=final):
            message.final_output.CopyFrom(
                runs_pb2.FinalOutput(agent=proto_string(agent), output=proto_string(final))
            )
        case RunFailed(error=error):
            message.error.CopyFrom(runs_pb2.RunError(code=error.code, message=proto_string(error.message)))
        case UsageReported(segment=segment, total=total, calls=calls):
            message.usage.CopyFrom(
                runs_pb2.UsageReported(
                    segment=usage_to_proto(segment),
                    total=usage_to_proto(total),
                    calls=[model_call_to_proto(call) for call in calls],
                )
            )
        case TextDelta(agent=agent, delta=delta, item_id=item_id):
            message.text_delta.CopyFrom(
                runs_pb2.TextDelta(
                    agent=proto_string(agent), delta=proto_string(delta), item_id=proto_string(item_id)
                )
            )
        case Reasoning(agent=agent, item_json=item_json):
            message.reasoning.CopyFrom(
                runs_pb2.ReasoningOutput(
                    agent=proto_string(agent), item_json=proto_string(item_json, json_text=True)
                )
            )
    return message


def feed_entry_to_proto(change: FeedEntry | FeedCursor) -> runs_pb2.WatchRunsResponse:
    """A WatchRuns message: a change of a run, or a bookmark (a cursor alone)."""
    if isinstance(change, FeedCursor):
        return runs_pb2.WatchRunsResponse(cursor=change.encode())
    return runs_pb2.WatchRunsResponse(
        cursor=change.cursor.encode(),
        run_id=change.event.run_id,
        agent=change.agent,
        event=event_to_proto(change.event),
    )


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
        approval_timeout=duration(info.approval_timeout),
    )
