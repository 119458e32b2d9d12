"""Recognising RunState JSON (writer, schema version, what is not a RunState) and what the
conversion between the SDKs' formats refuses. What it converts is in `test_state_goldens`."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from agents import Agent, RunContextWrapper, RunState
from timestep.domain import Snapshot
from timestep.state.codec import convert, describe
from timestep.state.document import PYTHON, SCHEMA_VERSIONS, TYPESCRIPT, StateDocument
from timestep.state.errors import NotARunStateError, UnsupportedStateError

from tests.interop import golden_vectors as golden


@pytest.mark.parametrize("marker", ["current_turn", "original_input", "generated_items", "model_responses"])
def test_python_keys_mean_a_python_writer(marker: str) -> None:
    assert StateDocument({"$schemaVersion": "1.0", marker: 0}).writer == PYTHON


@pytest.mark.parametrize("marker", ["currentTurn", "originalInput", "generatedItems", "modelResponses"])
def test_camel_case_keys_mean_a_typescript_writer(marker: str) -> None:
    assert StateDocument({"$schemaVersion": "1.0", marker: 0}).writer == TYPESCRIPT


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
def test_non_json_is_not_a_run_state(state_json: str) -> None:
    with pytest.raises(NotARunStateError, match="state_json is not valid JSON") as raised:
        describe(state_json)
    assert raised.value.reason == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "value", [{"current_turn": 1}, [{"$schemaVersion": "1.0"}], "1.0", 3, None, {"schemaVersion": "1.0"}]
)
def test_json_without_a_schema_version_is_not_a_run_state(value: Any) -> None:
    with pytest.raises(NotARunStateError, match=r"no \"\$schemaVersion\""):
        StateDocument.parse(json.dumps(value))


def test_a_schema_version_alone_names_no_writer() -> None:
    with pytest.raises(NotARunStateError, match="neither the Python nor the TypeScript"):
        describe('{"$schemaVersion": "1.0", "somethingElse": true}')


def test_a_real_sdk_state_is_recognised_as_python() -> None:
    agent: Agent[Any] = Agent(name="codec_agent", instructions="x")
    state: RunState[Any, Any] = RunState(
        context=RunContextWrapper(context=None), original_input="hello", starting_agent=agent
    )
    state_json = state.to_string()

    snapshot = describe(state_json)

    assert snapshot.writer == "python"
    assert snapshot.schema_version == str(json.loads(state_json)["$schemaVersion"])


# ----- conversion: what is refused, and how it says so -------------------------------------------

PYTHON_SDK = "Python (openai-agents 0.24.0, schema 1.21)"
TYPESCRIPT_SDK = "TypeScript (@openai/agents 0.20.0, schema 1.22)"
REASONING_ITEM = {"type": "reasoning", "id": "rs_1", "summary": []}


def _python(scenario: str = "pending_approval") -> dict[str, Any]:
    state: dict[str, Any] = json.loads(golden.load(scenario, "python"))
    return state


def _typescript(scenario: str = "pending_approval") -> dict[str, Any]:
    state: dict[str, Any] = json.loads(golden.load(scenario, "typescript"))
    return state


def _set(state: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    target: Any = state
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[last] = value
    return state


def _set_python_item(state: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Change a generated item and its copy in `session_items`, as the Python SDK would."""
    _set(state, f"generated_items.{path}", value)
    return _set(state, f"session_items.{path}", value)


PYTHON_REFUSALS = [
    (
        _set(_python(), "pending_input", [{"role": "user", "content": "more"}]),
        "input added to the paused run (pending_input)",
    ),
    (
        _set(_python(), "previous_response_id", "resp_1"),
        "a server-managed conversation (previous_response_id)",
    ),
    (_set(_python(), "input_guardrail_results", [{}]), "input guardrail results (input_guardrail_results)"),
    (_set(_python(), "current_step", None), "a run that is not paused on tool approvals (current_step)"),
    (_set(_python(), "sandbox", {}), "a sandbox session (sandbox)"),
    (_set(_python(), "new_field", 1), "top-level field(s) 'new_field', which the conversion does not know"),
    (
        _set(_python(), "context.context_meta.serialized_via", "context_serializer"),
        "a context that is not a plain JSON object",
    ),
    (_set_python_item(_python(), "0.raw_item", REASONING_ITEM), "'reasoning' items"),
    (_set_python_item(_python(), "0.tool_origin", {"type": "mcp"}), "tools of origin 'mcp'"),
    (
        _set_python_item(
            _python("tool_and_message_before_approval"), "1.raw_item.output", [{"type": "input_image"}]
        ),
        "tool outputs that are not text",
    ),
    (
        _set(
            _python(),
            "original_input",
            [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}],
        ),
        "input message parts of type 'input_image'",
    ),
    (
        _set(_python(), "current_agent", {"name": "assistant", "identity": "assistant#2"}),
        "several agents with one name",
    ),
]


@pytest.mark.parametrize(("state", "construct"), PYTHON_REFUSALS, ids=[c for _, c in PYTHON_REFUSALS])
def test_a_python_state_with_an_unsupported_construct_is_refused_by_name(
    state: dict[str, Any], construct: str
) -> None:
    with pytest.raises(UnsupportedStateError) as raised:
        convert(StateDocument(state), TYPESCRIPT)

    assert construct in raised.value.message
    assert raised.value.message.startswith(
        f"This {PYTHON_SDK} RunState cannot be converted to {TYPESCRIPT_SDK}"
    )


TYPESCRIPT_REFUSALS = [
    (_set(_typescript(), "conversationId", "conv_1"), "a server-managed conversation (conversationId)"),
    (_set(_typescript(), "pendingAgentToolRuns", {"a": "b"}), "agents used as tools (pendingAgentToolRuns)"),
    (
        _set(_typescript(), "lastProcessedResponse.functions.0.mcpToolBinding", "unknown"),
        "MCP tools or tool calls of unknown provenance",
    ),
    (_set(_typescript(), "generatedItems.0.rawItem", REASONING_ITEM), "'reasoning' items"),
    (
        _set(_typescript(), "generatedItems.1.functionToolStateKey", '["namespaced","crm","send_email"]'),
        "namespaced or deferred tools",
    ),
    (
        _set(_typescript("two_interruptions_one_approved_one_rejected"), "context.approvalInvocations", []),
        "a decision on call 'call_bob' not bound to that call (approvalInvocations)",
    ),
    (
        _set(_typescript(), "initialInputGuardrailsCompleted", False),
        "input guardrails that have not completed",
    ),
    (
        _set(_typescript(), "currentStep", {"type": "next_step_final_output", "output": "hi"}),
        "a run that is not paused on tool approvals",
    ),
    (
        _set(_typescript(), "context.toolInput", {"q": 1}),
        "context (e.g. toolInput of an agent used as a tool) field(s) 'toolInput'",
    ),
]


@pytest.mark.parametrize(("state", "construct"), TYPESCRIPT_REFUSALS, ids=[c for _, c in TYPESCRIPT_REFUSALS])
def test_a_typescript_state_with_an_unsupported_construct_is_refused_by_name(
    state: dict[str, Any], construct: str
) -> None:
    with pytest.raises(UnsupportedStateError) as raised:
        convert(StateDocument(state), PYTHON)

    assert construct in raised.value.message
    assert raised.value.message.startswith(
        f"This {TYPESCRIPT_SDK} RunState cannot be converted to {PYTHON_SDK}"
    )


@pytest.mark.parametrize(
    ("state", "target", "message"),
    [
        (
            _set(_python(), "$schemaVersion", "1.20"),
            TYPESCRIPT,
            f"python schema 1.20; the conversion to {TYPESCRIPT_SDK} reads {PYTHON_SDK} only",
        ),
        (
            _set(_typescript(), "$schemaVersion", "1.21"),
            PYTHON,
            f"typescript schema 1.21; the conversion to {PYTHON_SDK} reads {TYPESCRIPT_SDK} only",
        ),
    ],
)
def test_a_schema_version_the_conversion_was_not_built_for_is_refused_with_both_versions(
    state: dict[str, Any], target: str, message: str
) -> None:
    with pytest.raises(UnsupportedStateError, match=re.escape(message)):
        convert(StateDocument(state), target)


def test_a_state_missing_a_required_field_is_refused_as_malformed() -> None:
    state = _typescript()
    del state["generatedItems"]

    with pytest.raises(
        UnsupportedStateError, match=re.escape("a malformed state (KeyError: 'generatedItems')")
    ):
        convert(StateDocument(state), PYTHON)


@pytest.mark.parametrize("target", [PYTHON, TYPESCRIPT])
def test_a_state_already_in_the_requested_format_is_returned_as_given(target: str) -> None:
    state_json = golden.load("pending_approval", target)
    document = StateDocument.parse(state_json)

    assert convert(document, target) is document
    assert document.snapshot() == Snapshot(target, SCHEMA_VERSIONS[target], state_json)


def test_a_typescript_state_converts_to_python_and_back_to_what_the_typescript_sdk_wrote() -> None:
    state_json = golden.load("handoff_then_refund_approval", "typescript")

    round_trip = convert(convert(StateDocument.parse(state_json), PYTHON), TYPESCRIPT).text

    assert json.loads(round_trip) == json.loads(
        golden.load("handoff_then_refund_approval", "python_to_typescript")
    )
