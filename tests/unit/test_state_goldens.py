"""The golden vectors (`tests/interop/golden`, see `tests.interop.golden_vectors`): each real
SDK's state of the same run, and what the codec converts it into.

- The codec's output is the checked-in converted form, exactly: a codec change is a diff.
- The converted form is what the other SDK itself writes for the same run, except for what the
  source SDK does not record (listed in `_comparable`).
- A converted Python state loads in the Python SDK with its interruptions, decisions and context
  (the TypeScript SDK loads its converted states in `tests/interop`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from agents import RunState
from timestep.domain import InterruptionStatus
from timestep.examples.agents import assistant
from timestep.state.codec import convert, recorded_decisions
from timestep.state.document import PYTHON, SCHEMA_VERSIONS, TYPESCRIPT, StateDocument

from tests.interop.golden_vectors import load
from tests.interop.scenarios import SCENARIOS, Scenario

NAMES = [scenario.name for scenario in SCENARIOS]
SCENARIO = {scenario.name: scenario for scenario in SCENARIOS}


def _comparable(state: dict[str, Any]) -> dict[str, Any]:
    """A state without what one SDK records and the other cannot know:

    - the raw API responses TypeScript keeps (`providerData` of model responses) and the
      `endpoint` of its usage entries;
    - TypeScript's runtime settings of a tool (`strict`, `deferLoading`, …) beside its name,
      description and parameters (a loaded state uses the agent's own tool);
    - traces (a converted state starts a new one);
    - which tools each agent used: Python lists every use, TypeScript the last turn's; both SDKs
      only ask whether an agent used any;
    - `currentTurnSessionInputItems`, which Python has no equivalent of;
    - the descriptions Python writes on every tool call item (TypeScript records only the last
      response's tools).
    """
    state = json.loads(json.dumps(state))
    for response in [*state.get("modelResponses", []), state.get("lastModelResponse") or {}]:
        response.pop("providerData", None)
    for usage in _all(state, "usage"):
        for entry in usage.get("requestUsageEntries", []):
            entry.pop("endpoint", None)
    for function in (state.get("lastProcessedResponse") or {}).get("functions", []):
        function["tool"] = {k: function["tool"][k] for k in ("type", "name", "description", "parameters")}
    state.pop("trace", None)
    state.pop("currentTurnSessionInputItems", None)
    for key in ("toolUseTracker", "tool_use_tracker"):
        if key in state:
            state[key] = sorted(agent for agent, tools in state[key].items() if tools)
    for item in _all(state, "raw_item"):
        item.pop("description", None)
    return state


def _all(value: Any, key: str) -> list[dict[str, Any]]:
    """Every object in `value` that has `key` (for "usage": the usage objects themselves)."""
    found = []
    if isinstance(value, dict):
        if key in value:
            found.append(value[key] if key == "usage" else value)
        for item in value.values():
            found += _all(item, key)
    elif isinstance(value, list):
        for item in value:
            found += _all(item, key)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_a_python_state_converts_to_its_checked_in_typescript_form(name: str) -> None:
    converted = convert(StateDocument.parse(load(name, "python")), TYPESCRIPT)

    assert (converted.writer, converted.schema_version) == (TYPESCRIPT, SCHEMA_VERSIONS[TYPESCRIPT])
    assert json.loads(converted.text) == json.loads(load(name, "python_to_typescript"))


@pytest.mark.parametrize("name", NAMES)
def test_a_typescript_state_converts_to_its_checked_in_python_form(name: str) -> None:
    converted = convert(StateDocument.parse(load(name, "typescript")), PYTHON)

    assert (converted.writer, converted.schema_version) == (PYTHON, SCHEMA_VERSIONS[PYTHON])
    assert json.loads(converted.text) == json.loads(load(name, "typescript_to_python"))


@pytest.mark.parametrize("name", NAMES)
def test_the_typescript_form_of_a_python_state_is_what_the_typescript_sdk_writes_for_the_same_run(
    name: str,
) -> None:
    converted = json.loads(load(name, "python_to_typescript"))
    native = json.loads(load(name, "typescript"))

    assert _comparable(converted) == _comparable(native)


@pytest.mark.parametrize("name", NAMES)
def test_the_python_form_of_a_typescript_state_is_what_the_python_sdk_writes_for_the_same_run(
    name: str,
) -> None:
    converted = json.loads(load(name, "typescript_to_python"))
    native = json.loads(load(name, "python"))

    assert _comparable(converted) == _comparable(native)


@pytest.mark.parametrize("name", NAMES)
async def test_the_python_form_of_a_typescript_state_loads_with_its_approvals_decisions_and_context(
    name: str,
) -> None:
    scenario: Scenario = SCENARIO[name]
    state_json = load(name, "typescript_to_python")

    state = await RunState.from_string(assistant, state_json)

    pending = {item.call_id for item in state.get_interruptions()}
    assert pending == {
        i["rawItem"]["callId"]
        for i in json.loads(load(name, "typescript"))["currentStep"]["data"]["interruptions"]
    }
    assert state._context is not None
    assert state._context.context == scenario.context
    decided = recorded_decisions(StateDocument.parse(state_json))
    assert {call_id: d.status for call_id, d in decided.items()} == {
        d.call_id: InterruptionStatus.APPROVED if d.approve else InterruptionStatus.REJECTED
        for d in scenario.decisions
    }
    for decision in scenario.decisions:
        assert decided[decision.call_id].always == decision.always
        assert decided[decision.call_id].message == (decision.message or "")
