"""`timestep.runtime.sdk_internals` against the installed Agents SDK: each private attribute it
reads is still there, with what it expects in it. A failure here means the SDK changed: adapt
the accessor (or use the public API the SDK may now have)."""

from __future__ import annotations

import dataclasses
from typing import Any

from agents import Agent, FunctionTool, RunContextWrapper, RunState, function_tool, handoff
from pydantic import BaseModel, TypeAdapter
from timestep.runtime import sdk_internals

BILLING: Agent[Any] = Agent(name="billing", instructions="Bill.")


class Receipt(BaseModel):
    total: int


@function_tool(output_type=Receipt)
def charge() -> Receipt:
    """Charge the card."""
    return Receipt(total=3)


@function_tool
def ping() -> str:
    """Ping."""
    return "pong"


def _field(cls: type[Any], name: str) -> dataclasses.Field[Any]:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def test_the_current_agent_of_a_run_state_is_its_starting_agent_until_it_hands_off() -> None:
    state: RunState[Any, Any] = RunState(
        context=RunContextWrapper(context=None), original_input="hi", starting_agent=BILLING
    )

    assert _field(RunState, "_current_agent")
    assert sdk_internals.current_agent(state) is BILLING


def test_a_handoff_made_with_handoff_keeps_its_agent() -> None:
    made = handoff(BILLING)

    assert _field(type(made), "_agent_ref")
    assert sdk_internals.handoff_agent(made) is BILLING


def test_an_agent_used_as_a_tool_is_kept_by_its_tool() -> None:
    tool = BILLING.as_tool(tool_name="billing", tool_description="Bill.")

    assert isinstance(tool, FunctionTool)
    assert sdk_internals.tool_agent(tool) is BILLING
    assert sdk_internals.tool_agent(ping) is None


def test_a_tool_with_a_declared_output_type_has_its_type_adapter() -> None:
    adapter = sdk_internals.output_type_adapter(charge)

    assert isinstance(adapter, TypeAdapter)
    assert adapter.validate_python({"total": 3}) == Receipt(total=3)
    assert sdk_internals.output_type_adapter(ping) is None


def test_the_sdk_computes_approval_scopes_and_fingerprints_of_a_function_call() -> None:
    call = {"type": "function_call", "call_id": "call_1", "name": "ping", "arguments": "{}"}

    scope = sdk_internals.tool_invocation_approval_scope(call, tool_lookup_key=("bare", "ping"))
    identity = sdk_internals.tool_invocation_identity_and_scope(call, tool_lookup_key=("bare", "ping"))

    assert scope is not None
    assert identity is not None
    assert identity[2] == scope[1], "a call's approval scope is its tool's"
    assert all(isinstance(part, str) and part for part in identity)
