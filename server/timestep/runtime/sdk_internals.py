"""The only module that reads private attributes of the Agents SDK (openai-agents 0.24.0).

Each accessor names the public API the SDK lacks. `tests/unit/test_sdk_internals.py` checks
each against real objects of the installed SDK, so that an upgrade that moves one fails there
first, not in a run.
"""

from __future__ import annotations

from typing import Any

from agents import Agent, AgentBase, FunctionTool, Handoff, RunState

# The approval scope and fingerprint the SDK records beside a tool call's approval decision:
# computed by the SDK's own functions so that ours match what it writes by construction. No
# public function exposes them.
from agents._tool_invocation import tool_invocation_approval_scope as tool_invocation_approval_scope
from agents._tool_invocation import tool_invocation_identity_and_scope as tool_invocation_identity_and_scope
from pydantic import TypeAdapter


def current_agent(state: RunState[Any, Any]) -> Agent[Any] | None:
    """The agent a loaded RunState resumes with. `RunState` has no public accessor for it
    (only a finished run's result has `last_agent`)."""
    agent: Agent[Any] | None = state._current_agent
    return agent


def handoff_agent(handoff: Handoff[Any, Any]) -> AgentBase[Any] | None:
    """The agent `handoff(agent)` hands off to, or None. A `Handoff` exposes only the agent's
    name and the closure that returns it when invoked with a run context."""
    reference = handoff._agent_ref
    return reference() if reference is not None else None


def tool_agent(tool: FunctionTool) -> Any:
    """The agent an `Agent.as_tool()` tool runs, or None: the tool does not expose it publicly."""
    return tool._agent_instance


def output_type_adapter(tool: FunctionTool) -> TypeAdapter[Any] | None:
    """The adapter that validates and serializes a tool's declared output type, or None. A
    `FunctionTool` publishes only the JSON schema of that type (`output_json_schema`)."""
    return tool._output_type_adapter
