"""Run events as types: one frozen dataclass per `EventKind`, the `RunEvent` that carries one, and
the one codec between them and the JSON the database stores and the relay sends.

The JSON of each kind is the object of its fields by name, with timestamps as ISO 8601 strings
(the format rows already stored were written in); fields missing from an older row read as
their empty value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from timestep.domain import (
    EventKind,
    Interruption,
    InterruptionStatus,
    ModelCall,
    PendingEvent,
    RunError,
    RunStatus,
    Usage,
)


@dataclass(frozen=True)
class StatusChanged:
    kind: ClassVar[EventKind] = EventKind.STATUS_CHANGED
    status: RunStatus
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "reason": self.reason}


@dataclass(frozen=True)
class MessageOutput:
    kind: ClassVar[EventKind] = EventKind.MESSAGE_OUTPUT
    agent: str
    text: str
    item_json: str

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "text": self.text, "item_json": self.item_json}


@dataclass(frozen=True)
class ToolCalled:
    kind: ClassVar[EventKind] = EventKind.TOOL_CALLED
    agent: str
    tool_name: str
    call_id: str
    arguments_json: str
    item_json: str

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "tool_name": self.tool_name,
            "call_id": self.call_id,
            "arguments_json": self.arguments_json,
            "item_json": self.item_json,
        }


@dataclass(frozen=True)
class ToolOutput:
    kind: ClassVar[EventKind] = EventKind.TOOL_OUTPUT
    agent: str
    call_id: str
    output: str
    item_json: str

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "call_id": self.call_id,
            "output": self.output,
            "item_json": self.item_json,
        }


@dataclass(frozen=True)
class Handoff:
    kind: ClassVar[EventKind] = EventKind.HANDOFF
    from_agent: str
    to_agent: str

    def to_json(self) -> dict[str, Any]:
        return {"from_agent": self.from_agent, "to_agent": self.to_agent}


@dataclass(frozen=True)
class InterruptionRaised:
    """The run paused on a tool call that needs a decision."""

    kind: ClassVar[EventKind] = EventKind.INTERRUPTION
    interruption: Interruption

    def to_json(self) -> dict[str, Any]:
        return interruption_json(self.interruption)


@dataclass(frozen=True)
class InterruptionDecided:
    kind: ClassVar[EventKind] = EventKind.INTERRUPTION_DECIDED
    interruption: Interruption

    def to_json(self) -> dict[str, Any]:
        return interruption_json(self.interruption)


@dataclass(frozen=True)
class InterruptionExpired:
    """Nobody decided on the tool call in time: it is now rejected (an `InterruptionDecided`
    follows)."""

    kind: ClassVar[EventKind] = EventKind.INTERRUPTION_EXPIRED
    interruption: Interruption

    def to_json(self) -> dict[str, Any]:
        return interruption_json(self.interruption)


@dataclass(frozen=True)
class FinalOutput:
    kind: ClassVar[EventKind] = EventKind.FINAL_OUTPUT
    agent: str
    output: str

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "output": self.output}


@dataclass(frozen=True)
class RunFailed:
    """Why the run failed or was cancelled (kind ERROR)."""

    kind: ClassVar[EventKind] = EventKind.ERROR
    error: RunError

    def to_json(self) -> dict[str, Any]:
        return {"code": self.error.code, "message": self.error.message}


@dataclass(frozen=True)
class UsageReported:
    """A segment's usage, the run's total after it, and the segment's model calls."""

    kind: ClassVar[EventKind] = EventKind.USAGE
    segment: Usage
    total: Usage
    calls: tuple[ModelCall, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "segment": self.segment.to_dict(),
            "total": self.total.to_dict(),
            "calls": [
                {
                    "agent": call.agent,
                    "model": call.model,
                    "usage": call.usage.to_dict(),
                    "priced": call.priced,
                    "time": call.time.isoformat(),
                }
                for call in self.calls
            ],
        }


@dataclass(frozen=True)
class TextDelta:
    """Text as the model generates it: live only, never stored."""

    kind: ClassVar[EventKind] = EventKind.TEXT_DELTA
    agent: str
    delta: str
    item_id: str

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "delta": self.delta, "item_id": self.item_id}


@dataclass(frozen=True)
class Reasoning:
    kind: ClassVar[EventKind] = EventKind.REASONING
    agent: str
    item_json: str

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "item_json": self.item_json}


EventData = (
    StatusChanged
    | MessageOutput
    | ToolCalled
    | ToolOutput
    | Handoff
    | InterruptionRaised
    | InterruptionDecided
    | InterruptionExpired
    | FinalOutput
    | RunFailed
    | UsageReported
    | TextDelta
    | Reasoning
)


@dataclass(frozen=True)
class RunEvent:
    """A run event. Stored events have sequence >= 1; live-only events (text deltas) have 0."""

    run_id: str
    sequence: int
    segment: int
    data: EventData
    time: datetime

    @property
    def kind(self) -> EventKind:
        return self.data.kind

    @property
    def payload(self) -> dict[str, Any]:
        """The event's JSON, as stored and relayed."""
        return self.data.to_json()

    @property
    def is_durable(self) -> bool:
        return self.sequence > 0

    @property
    def stopped_status(self) -> RunStatus | None:
        """The status this event moved the run to, if it stopped the run."""
        if isinstance(self.data, StatusChanged) and self.data.status.is_stopped:
            return self.data.status
        return None


def pending(data: EventData, dedupe_key: str | None = None) -> PendingEvent:
    """`data` as the store takes it: its kind and its JSON."""
    return PendingEvent(data.kind, data.to_json(), dedupe_key)


def event_from_json(kind: EventKind, payload: dict[str, Any]) -> EventData:
    """The event of `kind` whose JSON is `payload` (as `to_json` wrote it, or an older row)."""
    text = _Texts(payload)
    match kind:
        case EventKind.STATUS_CHANGED:
            return StatusChanged(RunStatus(payload["status"]), text("reason"))
        case EventKind.MESSAGE_OUTPUT:
            return MessageOutput(text("agent"), text("text"), text("item_json"))
        case EventKind.TOOL_CALLED:
            return ToolCalled(
                text("agent"), text("tool_name"), text("call_id"), text("arguments_json"), text("item_json")
            )
        case EventKind.TOOL_OUTPUT:
            return ToolOutput(text("agent"), text("call_id"), text("output"), text("item_json"))
        case EventKind.HANDOFF:
            return Handoff(text("from_agent"), text("to_agent"))
        case EventKind.INTERRUPTION:
            return InterruptionRaised(_interruption(payload))
        case EventKind.INTERRUPTION_DECIDED:
            return InterruptionDecided(_interruption(payload))
        case EventKind.INTERRUPTION_EXPIRED:
            return InterruptionExpired(_interruption(payload))
        case EventKind.FINAL_OUTPUT:
            return FinalOutput(text("agent"), text("output"))
        case EventKind.ERROR:
            return RunFailed(RunError(text("code"), text("message")))
        case EventKind.USAGE:
            return UsageReported(
                Usage(**payload["segment"]),
                Usage(**payload["total"]),
                tuple(_model_call(call) for call in payload.get("calls", [])),
            )
        case EventKind.TEXT_DELTA:
            return TextDelta(text("agent"), text("delta"), text("item_id"))
        case EventKind.REASONING:
            return Reasoning(text("agent"), text("item_json"))


class _Texts:
    """A payload's string fields, '' where absent."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self._payload = payload

    def __call__(self, name: str) -> str:
        value = self._payload.get(name)
        return value if isinstance(value, str) else ""


def interruption_json(interruption: Interruption) -> dict[str, Any]:
    """An interruption as stored JSON (in its events, and as a transition hands it to the store)."""
    return {
        "id": interruption.id,
        "run_id": interruption.run_id,
        "segment": interruption.segment,
        "agent": interruption.agent,
        "tool_name": interruption.tool_name,
        "call_id": interruption.call_id,
        "arguments_json": interruption.arguments_json,
        "status": interruption.status.value,
        "always": interruption.always,
        "message": interruption.message,
        "create_time": interruption.create_time.isoformat(),
        "decide_time": interruption.decide_time.isoformat() if interruption.decide_time else None,
        "approved_arguments_json": interruption.approved_arguments_json,
        "decided_by": interruption.decided_by,
        "expire_time": interruption.expire_time.isoformat() if interruption.expire_time else None,
        "expired": interruption.expired,
    }


def _interruption(payload: dict[str, Any]) -> Interruption:
    text = _Texts(payload)
    decide_time = payload.get("decide_time")
    expire_time = payload.get("expire_time")
    return Interruption(
        id=text("id"),
        run_id=text("run_id"),
        segment=int(payload.get("segment", 0)),
        agent=text("agent"),
        tool_name=text("tool_name"),
        call_id=text("call_id"),
        arguments_json=text("arguments_json"),
        status=InterruptionStatus(payload["status"]),
        always=bool(payload.get("always", False)),
        message=text("message"),
        create_time=datetime.fromisoformat(payload["create_time"]),
        decide_time=datetime.fromisoformat(decide_time) if decide_time else None,
        approved_arguments_json=text("approved_arguments_json"),
        decided_by=text("decided_by"),
        expire_time=datetime.fromisoformat(expire_time) if expire_time else None,
        expired=bool(payload.get("expired", False)),
    )


def _model_call(payload: dict[str, Any]) -> ModelCall:
    return ModelCall(
        agent=payload["agent"],
        model=payload["model"],
        usage=Usage(**payload["usage"]),
        priced=bool(payload["priced"]),
        time=datetime.fromisoformat(payload["time"]),
    )
