"""RunState interchange: export a paused run's Agents SDK RunState JSON (with the decisions made
over gRPC applied, in the Python or the TypeScript format) and import a RunState produced by
either SDK in another process. The TypeScript SDK itself is exercised in `tests/interop`."""

from __future__ import annotations

import json
from typing import Any, cast

import grpc
import pytest
from agents import Runner, RunState
from timestep.examples.agents import assistant
from timestep_client import InterruptionStatus, RunStatus, StateFormat, TimestepClient
from timestep_client.v1 import runs_pb2

from tests.interop import golden_vectors as golden
from tests.interop.scenarios import CONTEXT, REJECTION
from timestep_testing.fakes.openai_responses import FakeOpenAI, function_call, text, tool_call, tool_calls
from timestep_testing.helpers import (
    EMAIL_ARGS,
    EMAIL_SENT,
    arguments,
    collect_events,
    expect_rpc_error,
    function_call_outputs,
    in_process_run_config,
    pending,
    unique,
)

SCHEMA_VERSION = "1.21"


async def test_the_run_state_of_a_paused_run_loads_in_the_agents_sdk_with_its_pending_approval(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_export"))
    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True)

    exported = await client.get_state(run.id)

    assert exported.schema_version == SCHEMA_VERSION
    assert json.loads(exported.state_json)["$schemaVersion"] == SCHEMA_VERSION
    assert exported.agent == "assistant"
    state = await RunState.from_string(assistant, exported.state_json)
    [approval] = state.get_interruptions()
    assert (approval.tool_name, approval.call_id) == ("send_email", "call_export")
    assert json.loads(approval.arguments or "{}") == EMAIL_ARGS


async def test_an_approval_made_over_grpc_travels_in_the_exported_state_so_the_sdk_runs_the_tool_unasked(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_carried"))
    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True)
    await client.approve(run.id, pending(run)[0].id)

    exported = await client.get_state(run.id)
    state = await RunState.from_string(assistant, exported.state_json)
    fake_openai.script(text("Bob has been emailed."))
    result = await Runner.run(assistant, state, run_config=in_process_run_config(fake_openai))

    assert result.interruptions == []
    assert result.final_output == "Bob has been emailed."
    assert len(fake_openai.requests) == 2
    assert function_call_outputs(fake_openai.requests[-1]) == {"call_carried": EMAIL_SENT}
    assert (await client.get_run(run.id)).status == RunStatus.RUN_STATUS_INTERRUPTED, (
        "the export moves nothing"
    )


async def test_a_partly_decided_run_exports_its_decision_and_leaves_the_rest_to_the_sdk(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    to_eve = {**EMAIL_ARGS, "to": "eve@example.com"}
    fake_openai.script(
        tool_calls(
            function_call("send_email", EMAIL_ARGS, call_id="call_bob"),
            function_call("send_email", to_eve, call_id="call_eve"),
        )
    )
    run = await client.create_run("assistant", "Tell Bob and Eve I'm running late", wait=True)
    bob = next(i for i in pending(run) if i.call_id == "call_bob")
    await client.approve(run.id, bob.id)

    state = await RunState.from_string(assistant, (await client.get_state(run.id)).state_json)
    eve = next(item for item in state.get_interruptions() if item.call_id == "call_eve")
    state.reject(eve, rejection_message="Eve already knows.")
    fake_openai.script(text("Only Bob was emailed."))
    result = await Runner.run(assistant, state, run_config=in_process_run_config(fake_openai))

    assert result.interruptions == []
    assert function_call_outputs(fake_openai.requests[-1]) == {
        "call_bob": EMAIL_SENT,
        "call_eve": "Eve already knows.",
    }


async def test_a_run_state_from_the_agents_sdk_imports_as_an_interrupted_run_that_can_be_approved_and_resumed(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_imported"))
    paused = await Runner.run(
        assistant, "Tell Bob I'm running late", run_config=in_process_run_config(fake_openai)
    )
    assert len(paused.interruptions) == 1
    state_json = paused.to_state().to_string()
    session = unique("session")

    run = await client.import_state("assistant", state_json, session_id=session, metadata={"source": "sdk"})

    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    assert (run.agent, run.current_agent, run.session_id) == ("assistant", "assistant", session)
    assert dict(run.metadata) == {"source": "sdk"}
    [interruption] = run.interruptions
    assert interruption.status == InterruptionStatus.INTERRUPTION_STATUS_PENDING
    assert (interruption.agent, interruption.tool_name, interruption.call_id) == (
        "assistant",
        "send_email",
        "call_imported",
    )
    assert arguments(interruption) == EMAIL_ARGS
    assert (await client.get_state(run.id)).state_json == state_json

    await client.approve(run.id, interruption.id)
    fake_openai.script(text("Bob has been emailed."))
    run = await client.resume(run.id, wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    assert run.final_output == "Bob has been emailed."
    assert function_call_outputs(fake_openai.requests[-1]) == {"call_imported": EMAIL_SENT}
    assert run.usage.requests == 1, "only the resumed segment's model call counts for the imported run"


@pytest.fixture
def parsed_run_states(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every whole RunState JSON text parsed in this process from now on."""
    parsed: list[int] = []
    decode = json.JSONDecoder.decode

    def counting_decode(decoder: json.JSONDecoder, text: str, *args: Any, **kwargs: Any) -> Any:
        if '"$schemaVersion"' in text:  # a whole RunState, not a value inside one
            parsed.append(len(text))
        return decode(decoder, text, *args, **kwargs)

    monkeypatch.setattr(json.JSONDecoder, "decode", counting_decode)
    return parsed


@pytest.mark.parametrize("writer", ["python", "typescript"])
async def test_an_imported_run_state_is_parsed_once(
    client: TimestepClient, parsed_run_states: list[int], writer: str
) -> None:
    """Up to 8 MiB of JSON: converted, loaded by the SDK and read for decisions from one parse."""
    state_json = golden.load("rejected_always_with_message_before_saving", writer)

    run = await client.import_state("assistant", state_json)

    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    assert [i.status for i in run.interruptions] == [InterruptionStatus.INTERRUPTION_STATUS_REJECTED]
    assert parsed_run_states == [len(state_json)]


async def test_a_decided_run_state_exported_in_the_other_format_is_parsed_once(
    client: TimestepClient, fake_openai: FakeOpenAI, parsed_run_states: list[int]
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True)
    await client.approve(run.id, pending(run)[0].id)
    parsed_run_states.clear()  # the segment's own snapshot record

    exported = await client.get_state(run.id, StateFormat.STATE_FORMAT_TYPESCRIPT)

    assert len(parsed_run_states) == 1, "the stored state, once"
    assert json.loads(exported.state_json)["context"]["functionApprovals"], "the approval travels in it"


async def test_only_an_interrupted_run_has_a_run_state_to_export(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(text("Done."))
    run = await client.create_run("assistant", "Say done", wait=True)

    await expect_rpc_error(client.get_state(run.id), grpc.StatusCode.FAILED_PRECONDITION)


# ----- the TypeScript format ---------------------------------------------------------------------


async def test_a_typescript_run_state_imports_as_given_and_exports_in_either_format(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    state_json = golden.load("pending_approval", "typescript")
    session = unique("session")

    imported = await client.runs.ImportRunState(
        runs_pb2.ImportRunStateRequest(agent="assistant", state_json=state_json, session_id=session)
    )

    assert (imported.format, imported.schema_version) == (StateFormat.STATE_FORMAT_TYPESCRIPT, "1.22")
    run = imported.run
    [interruption] = run.interruptions
    assert (interruption.tool_name, interruption.call_id, arguments(interruption)) == (
        "send_email",
        "call_bob",
        EMAIL_ARGS,
    )
    as_typescript = await client.get_state(run.id, StateFormat.STATE_FORMAT_TYPESCRIPT)
    assert as_typescript.state_json == state_json, "the snapshot is stored as given"
    assert (as_typescript.format, as_typescript.schema_version, as_typescript.session_id) == (
        StateFormat.STATE_FORMAT_TYPESCRIPT,
        "1.22",
        session,
    )
    as_python = await client.get_state(run.id)
    assert (as_python.format, as_python.schema_version) == (StateFormat.STATE_FORMAT_PYTHON, SCHEMA_VERSION)
    python_state = json.loads(as_python.state_json)
    assert python_state["context"]["context"] == CONTEXT
    assert python_state["context"]["usage"]["requests"] == 1
    assert (
        python_state["context"]["usage"]["total_tokens"]
        == json.loads(state_json)["context"]["usage"]["totalTokens"]
    )
    imported_status = [
        e.status_changed for e in await collect_events(client, run.id) if e.HasField("status_changed")
    ]
    assert imported_status[-1].reason == "imported from typescript RunState JSON (schema 1.22)"


async def test_approvals_decided_in_typescript_before_saving_are_imported_as_decided(
    client: TimestepClient,
) -> None:
    state_json = golden.load("rejected_always_with_message_before_saving", "typescript")

    run = await client.import_state("assistant", state_json)

    [interruption] = run.interruptions
    assert (interruption.status, interruption.always, interruption.message) == (
        InterruptionStatus.INTERRUPTION_STATUS_REJECTED,
        True,
        REJECTION,
    )
    assert pending(run) == [], "nothing is asked again"


async def test_a_typescript_state_the_conversion_does_not_support_is_an_invalid_argument_naming_it(
    client: TimestepClient,
) -> None:
    state = json.loads(golden.load("pending_approval", "typescript"))
    state["conversationId"] = "conv_0123"

    error = await expect_rpc_error(
        client.import_state("assistant", json.dumps(state)), grpc.StatusCode.INVALID_ARGUMENT
    )

    assert error.details() == (
        "This TypeScript (@openai/agents 0.20.0, schema 1.22) RunState cannot be converted to Python "
        "(openai-agents 0.24.0, schema 1.21): it contains a server-managed conversation (conversationId), "
        "which the conversion does not support. Supported: runs paused on function tool approvals, with "
        "decisions made before saving, messages, executed function tools and handoffs before the pause, "
        "usage and a plain JSON context."
    )


async def test_exporting_a_state_the_typescript_format_cannot_express_fails_the_precondition_naming_why(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_server_side"))
    paused = await Runner.run(assistant, "Tell Bob", run_config=in_process_run_config(fake_openai))
    state = json.loads(paused.to_state().to_string())
    state["previous_response_id"] = "resp_server_side"
    run = await client.import_state("assistant", json.dumps(state))

    error = await expect_rpc_error(
        client.get_state(run.id, StateFormat.STATE_FORMAT_TYPESCRIPT), grpc.StatusCode.FAILED_PRECONDITION
    )

    assert "a server-managed conversation (previous_response_id)" in (error.details() or "")
    assert "Python (openai-agents 0.24.0, schema 1.21)" in (error.details() or "")
    assert (await client.get_state(run.id)).format == StateFormat.STATE_FORMAT_PYTHON, (
        "its own format still works"
    )


async def test_an_unknown_state_format_is_an_invalid_argument(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True)

    error = await expect_rpc_error(
        client.runs.GetRunState(
            runs_pb2.GetRunStateRequest(run_id=run.id, format=cast(runs_pb2.StateFormat, 7))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )

    assert "format 7 is not a StateFormat" in (error.details() or "")
