"""Edited tool calls in a RunState: an approver may run a tool with other arguments than the
model proposed, and then the state says so everywhere it holds the call (the items the model's
next request is built from, the model's responses, the step's pending approvals), so that the
tool runs with the edited arguments and the model's history shows the call as it ran."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from timestep.domain import Interruption
from timestep.state.codec import convert
from timestep.state.document import PYTHON, StateDocument
from timestep.state.fingerprints import python_invocation


def edited_arguments(decided: Iterable[Interruption]) -> dict[str, str]:
    """The edited arguments of these interruptions, by call id."""
    return {i.call_id: i.approved_arguments_json for i in decided if i.approved_arguments_json}


def with_arguments(document: StateDocument, edits: Mapping[str, str]) -> StateDocument:
    """`document` with the arguments of each function call whose call id is in `edits` replaced
    by the edited JSON (a Python-format document; `document` itself when nothing is edited)."""
    if not edits:
        return document
    data = copy.deepcopy(convert(document, PYTHON).data)
    calls: dict[str, dict[str, Any]] = {}
    _replace(data, edits, calls)
    # The SDK binds each call id to a fingerprint of its arguments (a call id reused with other
    # arguments is refused as the model's misbehaviour): the edited call gets its own.
    invocations = data.get("context", {}).get("tool_invocations", {})
    for call_id, call in calls.items():
        if call_id in invocations:
            scope, fingerprint = python_invocation(call, handoff=False)
            invocations[call_id].update(approval_scope=scope, fingerprint=fingerprint)
    return StateDocument(data)


def _replace(node: Any, edits: Mapping[str, str], calls: dict[str, dict[str, Any]]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "function_call" and node.get("call_id") in edits:
            node["arguments"] = edits[node["call_id"]]
            calls[node["call_id"]] = node
        for value in node.values():
            _replace(value, edits, calls)
    elif isinstance(node, list):
        for value in node:
            _replace(value, edits, calls)
