"""The Agents SDK's RunState and the codec's `StateDocument`s: the one module that loads and
exports RunState JSON through the SDK.

A document is loaded from its parsed object (`RunState.from_json`) and a state exported as one
(`RunState.to_json`), so the JSON text of a request is parsed once, by `StateDocument.parse`.
"""

from __future__ import annotations

from typing import Any

from agents import Agent, RunState

from timestep.state.codec import convert
from timestep.state.document import PYTHON, StateDocument


async def load_state(agent: Agent[Any], state: StateDocument | str) -> RunState[Any, Any]:
    """The RunState of `agent` in a document, or in RunState JSON text (e.g. a stored snapshot),
    written by either SDK: a TypeScript state is converted to the Python format first."""
    document = state if isinstance(state, StateDocument) else StateDocument.parse(state)
    # The SDK reads the object without modifying it (tests/unit/test_state_sdk.py), so the
    # document's other readers may read it after.
    return await RunState.from_json(agent, convert(document, PYTHON).data)


def export_state(state: RunState[Any, Any]) -> StateDocument:
    """The document of `state`, in the Python format; its text is what `state.to_string()` returns."""
    return StateDocument(state.to_json())
