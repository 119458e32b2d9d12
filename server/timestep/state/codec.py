"""Convert RunState documents between the Python and the TypeScript Agents SDK formats.

Neither SDK loads the other's RunState JSON. This module converts a paused run's state between
the two formats, for the SDK releases and schema versions of `timestep.state.document`.

Supported: a run paused on approvals of function tools (one or several in a turn), with
approvals and rejections (with messages, with `always`) decided before saving, after any number
of turns of messages, executed function tools and handoffs between agents; usage; a plain JSON
context. Anything else is refused with an `UnsupportedStateError` naming the construct, never
converted approximately.
"""

from __future__ import annotations

from dataclasses import dataclass

from timestep.domain import InterruptionStatus, Snapshot
from timestep.state.document import PYTHON, SCHEMA_VERSIONS, SDK_RELEASES, TYPESCRIPT, StateDocument
from timestep.state.errors import UnsupportedStateError
from timestep.state.python_to_typescript import to_typescript
from timestep.state.typescript_to_python import to_python
from timestep.state.unsupported import Unsupported


def describe(state_json: str) -> Snapshot:
    """The snapshot record for RunState JSON text, validated for shape (not for content)."""
    return StateDocument.parse(state_json).snapshot()


def sdk(writer: str) -> str:
    """E.g. "TypeScript (@openai/agents 0.20.0, schema 1.22)"."""
    language, release = SDK_RELEASES[writer]
    return f"{language} ({release}, schema {SCHEMA_VERSIONS[writer]})"


def convert(document: StateDocument, target: str) -> StateDocument:
    """The RunState in `target`'s format (PYTHON or TYPESCRIPT): `document` itself when it
    already is, else converted (its text is serialized the way that SDK serializes)."""
    writer = document.writer
    if writer == target:
        return document
    if document.schema_version != SCHEMA_VERSIONS[writer]:
        raise UnsupportedStateError(
            f"This RunState was written with {writer} schema {document.schema_version}; the conversion to "
            f"{sdk(target)} reads {sdk(writer)} only. Save the run with that SDK version."
        )
    try:
        return StateDocument(
            to_typescript(document.data) if target == TYPESCRIPT else to_python(document.data)
        )
    except Unsupported as error:
        construct = error.construct
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        # A required field is missing or has the wrong type: the JSON is not an SDK-written state.
        construct = f"a malformed state ({type(error).__name__}: {error})"
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


def recorded_decisions(document: StateDocument) -> dict[str, RecordedDecision]:
    """The decisions a Python RunState holds for the calls it is paused on, by call id.

    A decision on the call itself wins over a tool-wide ("always") one, an approval over a
    rejection, as in both SDKs.
    """
    assert document.writer == PYTHON, "decisions are read from a Python RunState"
    data = document.data
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
