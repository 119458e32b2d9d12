"""Recognise RunState JSON: which SDK wrote it and which schema version it has.

The Python and TypeScript Agents SDKs write different RunState JSON (snake_case vs camelCase
keys, independent schema version numbers). This module tells them apart so that a snapshot is
stored with its writer and version, and refuses what is not a RunState at all.
"""

from __future__ import annotations

import json
from typing import Any

from timestep.domain import Snapshot
from timestep.errors import InvalidArgumentError

PYTHON = "python"
TYPESCRIPT = "typescript"

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
