"""Translate Agents SDK stream events and results into the service's run events."""

from __future__ import annotations

import json
from typing import Any

from agents import (
    HandoffCallItem,
    HandoffOutputItem,
    ItemHelpers,
    MessageOutputItem,
    ReasoningItem,
    RunItem,
    ToolApprovalItem,
    ToolCallItem,
    ToolCallOutputItem,
)
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from timestep.domain import NewInterruption, PendingEvent
from timestep.event_types import Handoff, MessageOutput, Reasoning, ToolCalled, ToolOutput, pending


def to_json_text(value: Any) -> str:
    """JSON text for SDK values: pydantic models, dicts, lists or scalars."""
    if isinstance(value, BaseModel):
        try:
            return value.model_dump_json(exclude_unset=True)
        except PydanticSerializationError:
            # pydantic cannot write a lone surrogate (model text may hold one, from a "\ud800"
            # JSON escape); the same JSON, written by json.
            dumped = value.model_dump(mode="json", exclude_unset=True)
            return json.dumps(dumped, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(value, default=str)


def output_text(value: Any) -> str:
    """A final output or tool output as text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else to_json_text(value)


def _field(raw: Any, name: str) -> Any:
    return raw.get(name) if isinstance(raw, dict) else getattr(raw, name, None)


def event_for_item(item: RunItem) -> PendingEvent | None:
    """The durable event for a generated item, or None for items we do not report."""
    agent = item.agent.name
    raw = item.raw_item
    if isinstance(item, MessageOutputItem):
        return pending(MessageOutput(agent, ItemHelpers.text_message_output(item), to_json_text(raw)))
    if isinstance(item, ToolCallItem | HandoffCallItem):
        return pending(
            ToolCalled(
                agent=agent,
                tool_name=_field(raw, "name") or "",
                call_id=_field(raw, "call_id") or "",
                arguments_json=_field(raw, "arguments") or "",
                item_json=to_json_text(raw),
            )
        )
    if isinstance(item, ToolCallOutputItem):
        return pending(
            ToolOutput(
                agent=agent,
                call_id=_field(raw, "call_id") or "",
                output=output_text(item.output),
                item_json=to_json_text(raw),
            )
        )
    if isinstance(item, HandoffOutputItem):
        return pending(Handoff(item.source_agent.name, item.target_agent.name))
    if isinstance(item, ReasoningItem):
        return pending(Reasoning(agent, to_json_text(raw)))
    return None  # approvals become interruptions when the segment ends; the rest is not reported


def interruption_for(item: ToolApprovalItem) -> NewInterruption:
    raw = item.raw_item
    return NewInterruption(
        agent=item.agent.name,
        tool_name=item.tool_name or _field(raw, "name") or "",
        call_id=item.call_id or "",
        arguments_json=item.arguments or "{}",
    )
