"""`timestep.runtime.state_sdk`: RunState documents in and out of the Agents SDK, each parsed once."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from agents import RunContextWrapper, RunState
from agents.run_state import CURRENT_SCHEMA_VERSION
from timestep.examples.agents import assistant
from timestep.runtime.state_sdk import export_state, load_state
from timestep.state.document import PYTHON, SCHEMA_VERSIONS, StateDocument

from tests.interop.golden_vectors import load
from tests.interop.scenarios import SCENARIOS

NAMES = [scenario.name for scenario in SCENARIOS]


def test_the_sdk_writes_the_schema_version_the_codec_is_built_for() -> None:
    assert SCHEMA_VERSIONS[PYTHON] == CURRENT_SCHEMA_VERSION


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["python", "typescript"])
async def test_loading_a_document_leaves_its_parsed_object_as_it_was(name: str, kind: str) -> None:
    """Its other readers (the recorded decisions of an import) read it after the SDK did."""
    document = StateDocument.parse(load(name, kind))
    before = copy.deepcopy(document.data)

    state = await load_state(assistant, document)

    assert state.get_interruptions()
    assert document.data == before


@pytest.mark.parametrize("kind", ["python", "typescript"])
async def test_a_state_loads_the_same_from_its_text_and_from_its_document(kind: str) -> None:
    text = load("handoff_then_refund_approval", kind)

    from_text = await load_state(assistant, text)
    from_document = await load_state(assistant, StateDocument.parse(text))

    assert export_state(from_text).data == export_state(from_document).data


def test_an_exported_state_is_what_the_sdk_serializes() -> None:
    state: RunState[Any, Any] = RunState(
        context=RunContextWrapper(context=None), original_input="hello", starting_agent=assistant
    )

    document = export_state(state)

    assert (document.writer, document.schema_version) == (PYTHON, SCHEMA_VERSIONS[PYTHON])
    assert document.text == state.to_string()
