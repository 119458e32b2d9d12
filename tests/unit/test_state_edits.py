"""An edited tool call in a RunState: every copy of the call carries the edited arguments, and
the SDK's fingerprint of the invocation is the edited call's (else the SDK refuses the call id as
reused for another invocation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from timestep.state.document import StateDocument
from timestep.state.edits import with_arguments
from timestep.state.fingerprints import python_invocation

GOLDEN = Path(__file__).resolve().parents[1] / "interop" / "golden"
EDITED = json.dumps({"to": "carol@example.com", "subject": "Late", "body": "10:30"})


def calls(node: Any, call_id: str) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if node.get("type") == "function_call" and node.get("call_id") == call_id else []
        return found + [c for value in node.values() for c in calls(value, call_id)]
    if isinstance(node, list):
        return [c for value in node for c in calls(value, call_id)]
    return []


def test_every_copy_of_the_call_and_its_fingerprint_are_edited_in_both_formats() -> None:
    for name in ("pending_approval.python.json", "pending_approval.typescript.json"):
        document = StateDocument.parse((GOLDEN / name).read_text())

        edited = with_arguments(document, {"call_bob": EDITED})

        copies = calls(edited.data, "call_bob")
        assert len(copies) >= 5
        assert {c["arguments"] for c in copies} == {EDITED}
        scope, fingerprint = python_invocation(copies[0], handoff=False)
        invocation = edited.data["context"]["tool_invocations"]["call_bob"]
        assert (invocation["approval_scope"], invocation["fingerprint"]) == (scope, fingerprint)


def test_no_edit_leaves_the_document_as_it_is() -> None:
    document = StateDocument.parse((GOLDEN / "pending_approval.python.json").read_text())
    assert with_arguments(document, {}) is document
