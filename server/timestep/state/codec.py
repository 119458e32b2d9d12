"""Recognise RunState JSON (which SDK wrote it, which schema version) and convert between formats.

The Python and TypeScript Agents SDKs write different RunState JSON (snake_case vs camelCase
keys, their own item protocols, independent schema version numbers) and neither loads the
other's. This module tells them apart, so that a snapshot is stored with its writer and version,
refuses what is not a RunState at all, and converts a paused run's state between the two
formats for the versions it knows:

| writer     | SDK                     | schema |
|------------|-------------------------|--------|
| python     | openai-agents 0.24.0    | 1.21   |
| typescript | @openai/agents 0.20.0   | 1.22   |

Supported: a run paused on approvals of function tools (one or several in a turn), with
approvals and rejections (with messages, with `always`) decided before saving, after any number
of turns of messages, executed function tools and handoffs between agents; usage; a plain JSON
context. Anything else is refused with an `UnsupportedStateError` naming the construct, never
converted approximately.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from timestep.domain import InterruptionStatus, Snapshot
from timestep.errors import InvalidArgumentError
from timestep.state.python_to_typescript import to_typescript
from timestep.state.typescript_to_python import to_python
from timestep.state.unsupported import Unsupported

PYTHON = "python"
TYPESCRIPT = "typescript"

# The schema version each converter reads and writes, and the SDK release that writes it.
SCHEMA_VERSIONS = {PYTHON: "1.21", TYPESCRIPT: "1.22"}
_SDKS = {PYTHON: "Python (openai-agents 0.24.0", TYPESCRIPT: "TypeScript (@openai/agents 0.20.0"}

# Keys only one SDK writes at the top level of a RunState.
_PYTHON_MARKERS = ("current_turn", "original_input", "generated_items", "model_responses")
_TYPESCRIPT_MARKERS = ("currentTurn", "originalInput", "generatedItems", "modelResponses")


def parse_state_json(state_json: str) -> dict[str, Any]:
    try:
        data = json.loads(state_json)
    except (ValueError, RecursionError) as error:
        raise InvalidArgumentError(
            f"state_json is not valid JSON ({error}). Pass the string RunState.to_string() returned.",
            field="state_json",
        ) from error
    if not isinstance(data, dict) or "$schemaVersion" not in data:
        raise InvalidArgumentError(
            'state_json is JSON but not an Agents SDK RunState (it has no "$schemaVersion"). '
            "Pass the string RunState.to_string() returned.",
            field="state_json",
        )
    return data


def detect_writer(data: dict[str, Any]) -> str:
    if any(key in data for key in _PYTHON_MARKERS):
        return PYTHON
    if any(key in data for key in _TYPESCRIPT_MARKERS):
        return TYPESCRIPT
    raise InvalidArgumentError(
        'state_json has a "$schemaVersion" but neither the Python nor the TypeScript RunState keys '
        "(current_turn / currentTurn); it cannot be loaded.",
        field="state_json",
    )


def describe(state_json: str) -> Snapshot:
    """The snapshot record for a RunState JSON string, validated for shape (not for content)."""
    data = parse_state_json(state_json)
    return Snapshot(
        writer=detect_writer(data), schema_version=str(data["$schemaVersion"]), state_json=state_json
    )


class UnsupportedStateError(Exception):
    """A RunState that cannot be converted; `message` names the construct and the versions.

    Callers decide the status: a state passed in is an invalid argument, a stored one fails a
    precondition of the request.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def sdk(writer: str) -> str:
    """E.g. "TypeScript (@openai/agents 0.20.0, schema 1.22)"."""
    return f"{_SDKS[writer]}, schema {SCHEMA_VERSIONS[writer]})"


def convert(state_json: str, target: str) -> Snapshot:
    """The RunState in `target`'s format (PYTHON or TYPESCRIPT): as given when it already is,
    else converted and serialized the way that SDK serializes (Python indented, TypeScript
    compact)."""
    data = parse_state_json(state_json)
    writer = detect_writer(data)
    version = str(data["$schemaVersion"])
    if writer == target:
        return Snapshot(writer, version, state_json)
    if version != SCHEMA_VERSIONS[writer]:
        raise UnsupportedStateError(
            f"This RunState was written with {writer} schema {version}; the conversion to {sdk(target)} "
            f"reads {sdk(writer)} only. Save the run with that SDK version."
        )
    try:
        converted = to_typescript(data) if target == TYPESCRIPT else to_python(data)
    except Unsupported as error:
        construct = error.construct
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        # A required field is missing or has the wrong type: the JSON is not an SDK-written state.
        construct = f"a malformed state ({type(error).__name__}: {error})"
    else:
        if target == TYPESCRIPT:
            return Snapshot(
                target,
                SCHEMA_VERSIONS[target],
                json.dumps(converted, separators=(",", ":"), ensure_ascii=False),
            )
        return Snapshot(target, SCHEMA_VERSIONS[target], json.dumps(converted, indent=2))
    raise UnsupportedStateError(
        f"This {sdk(writer)} RunState cannot be converted to {sdk(target)}: it contains {construct}, which "
        "the conversion does not support. Supported: runs paused on function tool approvals, with decisions "
        "made before saving, messages, executed function tools and handoffs before the pause, usage and a "
        "plain JSON context."
    )


@dataclass(frozen=True)
class RecordedDecision:
    """A decision a saved RunState already holds for one of its pending tool calls."""

    status: InterruptionStatus
    always: bool
    message: str


def recorded_decisions(python_state_json: str) -> dict[str, RecordedDecision]:
    """The decisions a Python RunState holds for the calls it is paused on, by call id.

    A decision on the call itself wins over a tool-wide ("always") one, an approval over a
    rejection, as in both SDKs.
    """
    data = parse_state_json(python_state_json)
    records = {
        (entry["agent"]["name"], entry["tool_key"]): entry["decision"]
        for entry in data["context"].get("function_tool_approvals", [])
    }
    decisions = {}
    for item in data["current_step"]["data"]["interruptions"]:
        call_id = item["raw_item"]["call_id"]
        record = records.get((item["agent"]["name"], item.get("tool_name", item["raw_item"]["name"])))
        if record is None:
            continue
        approved, rejected = record["approved"], record["rejected"]
        messages = record.get("rejection_messages") or {}
        if isinstance(approved, list) and call_id in approved:
            decisions[call_id] = RecordedDecision(InterruptionStatus.APPROVED, False, "")
        elif isinstance(rejected, list) and call_id in rejected:
            decisions[call_id] = RecordedDecision(
                InterruptionStatus.REJECTED, False, messages.get(call_id, "")
            )
        elif approved is True:
            decisions[call_id] = RecordedDecision(InterruptionStatus.APPROVED, True, "")
        elif rejected is True:
            message = messages.get(call_id) or record.get("sticky_rejection_message") or ""
            decisions[call_id] = RecordedDecision(InterruptionStatus.REJECTED, True, message)
    return decisions
