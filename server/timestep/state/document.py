"""A RunState JSON document, parsed once, and the formats the codec knows.

The Python and TypeScript Agents SDKs write different RunState JSON (snake_case vs camelCase
keys, independent schema version numbers). A `StateDocument` is one such JSON text parsed once:
which SDK wrote it, its schema version, the parsed object (which every reader of the request
shares) and the text, kept verbatim for storage.
"""

from __future__ import annotations

import json
from typing import Any, Final

from timestep.domain import Snapshot
from timestep.state.errors import NotARunStateError

PYTHON: Final = "python"
TYPESCRIPT: Final = "typescript"

# The SDK (language, release) each format is built for, and the RunState schema version that
# release writes: what the converters read and write. The one place these versions are written.
SDK_RELEASES: Final = {
    PYTHON: ("Python", "openai-agents 0.24.0"),
    TYPESCRIPT: ("TypeScript", "@openai/agents 0.20.0"),
}
SCHEMA_VERSIONS: Final = {PYTHON: "1.21", TYPESCRIPT: "1.22"}

_SCHEMA_VERSION_KEY: Final = "$schemaVersion"
# Keys only one SDK writes at the top level of a RunState.
_PYTHON_MARKERS: Final = ("current_turn", "original_input", "generated_items", "model_responses")
_TYPESCRIPT_MARKERS: Final = ("currentTurn", "originalInput", "generatedItems", "modelResponses")
_HINT: Final = "Pass the string RunState.to_string() returned."


class StateDocument:
    """RunState JSON with its writer (PYTHON or TYPESCRIPT) and schema version.

    `data` is the parsed object: everything that reads the document reads it, and none modifies
    it. `text` is the JSON as given; a document made from an object (a conversion, an SDK export)
    is serialized the way its writer's SDK serializes (Python indented, TypeScript compact) when
    its text is first asked for.
    """

    def __init__(self, data: Any, text: str | None = None) -> None:
        if not isinstance(data, dict) or _SCHEMA_VERSION_KEY not in data:
            raise NotARunStateError(
                "state_json is JSON but not an Agents SDK RunState "
                f'(it has no "{_SCHEMA_VERSION_KEY}"). {_HINT}'
            )
        self.writer: Final = _writer(data)
        self.schema_version: Final = str(data[_SCHEMA_VERSION_KEY])
        self.data: Final[dict[str, Any]] = data
        self._text = text

    @classmethod
    def parse(cls, text: str) -> StateDocument:
        """The document of RunState JSON text; refuses text that is not a RunState."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise NotARunStateError(f"state_json is not valid JSON ({error}). {_HINT}") from error
        return cls(data, text)

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = (
                json.dumps(self.data, indent=2)
                if self.writer == PYTHON
                else json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
            )
        return self._text

    def snapshot(self) -> Snapshot:
        """The record stored for this state: its text with its writer and schema version."""
        return Snapshot(self.writer, self.schema_version, self.text)


def _writer(data: dict[str, Any]) -> str:
    if any(key in data for key in _PYTHON_MARKERS):
        return PYTHON
    if any(key in data for key in _TYPESCRIPT_MARKERS):
        return TYPESCRIPT
    raise NotARunStateError(
        f'state_json has a "{_SCHEMA_VERSION_KEY}" but neither the Python nor the TypeScript RunState keys '
        "(current_turn / currentTurn); it cannot be loaded."
    )
