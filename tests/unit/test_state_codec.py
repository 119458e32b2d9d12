"""Recognising RunState JSON: writer, schema version, and what is not a RunState."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agents import Agent, RunContextWrapper, RunState
from timestep.domain import Snapshot
from timestep.errors import InvalidArgumentError
from timestep.state.codec import PYTHON, TYPESCRIPT, describe, detect_writer, parse_state_json


@pytest.mark.parametrize("marker", ["current_turn", "original_input", "generated_items", "model_responses"])
def test_python_keys_mean_a_python_writer(marker: str) -> None:
    assert detect_writer({"$schemaVersion": "1.0", marker: 0}) == PYTHON


@pytest.mark.parametrize("marker", ["currentTurn", "originalInput", "generatedItems", "modelResponses"])
def test_camel_case_keys_mean_a_typescript_writer(marker: str) -> None:
    assert detect_writer({"$schemaVersion": "1.0", marker: 0}) == TYPESCRIPT


def test_describe_a_python_state() -> None:
    state_json = json.dumps({"$schemaVersion": "1.4", "current_turn": 1, "original_input": "hi"})

    assert describe(state_json) == Snapshot(writer="python", schema_version="1.4", state_json=state_json)


def test_describe_a_typescript_state_keeps_the_text_untouched() -> None:
    state_json = '{ "currentTurn": 2,  "$schemaVersion": "1.0", "originalInput": [] }'

    snapshot = describe(state_json)

    assert snapshot.writer == "typescript"
    assert snapshot.schema_version == "1.0"
    assert snapshot.state_json == state_json


def test_a_numeric_schema_version_becomes_a_string() -> None:
    assert describe('{"$schemaVersion": 2, "current_turn": 0}').schema_version == "2"


@pytest.mark.parametrize("state_json", ["", "not json", "{'single': 'quotes'}", '{"unterminated": '])
def test_non_json_is_an_invalid_argument(state_json: str) -> None:
    with pytest.raises(InvalidArgumentError, match="not valid JSON") as raised:
        describe(state_json)
    assert raised.value.field == "state_json"


@pytest.mark.parametrize(
    "value", [{"current_turn": 1}, [{"$schemaVersion": "1.0"}], "1.0", 3, None, {"schemaVersion": "1.0"}]
)
def test_json_without_a_schema_version_is_not_a_run_state(value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"no \"\$schemaVersion\"") as raised:
        parse_state_json(json.dumps(value))
    assert raised.value.field == "state_json"


def test_a_schema_version_alone_names_no_writer() -> None:
    with pytest.raises(InvalidArgumentError, match="neither the Python nor the TypeScript") as raised:
        describe('{"$schemaVersion": "1.0", "somethingElse": true}')
    assert raised.value.field == "state_json"


def test_a_real_sdk_state_is_recognised_as_python() -> None:
    agent: Agent[Any] = Agent(name="codec_agent", instructions="x")
    state: RunState[Any, Any] = RunState(
        context=RunContextWrapper(context=None), original_input="hello", starting_agent=agent
    )
    state_json = state.to_string()

    snapshot = describe(state_json)

    assert snapshot.writer == "python"
    assert snapshot.schema_version == str(json.loads(state_json)["$schemaVersion"])
