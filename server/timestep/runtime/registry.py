"""The agents this service can run, loaded from a `module:attribute` reference and keyed by name.

An entry is an `agents.Agent`, or a `RegisteredAgent` that gives the service's options for it
(a default approval timeout for its runs)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from agents import Agent, FunctionTool, Handoff, Model

from timestep.domain import MAX_APPROVAL_TIMEOUT, MIN_APPROVAL_TIMEOUT
from timestep.errors import NotFoundError
from timestep.runtime.sdk_internals import handoff_agent, tool_agent
from timestep.runtime.steps import StepModel, route_tools_through_steps
from timestep.runtime.usage import model_name_for


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str
    needs_approval: bool
    parameters_json: str


@dataclass(frozen=True)
class AgentInfo:
    name: str
    instructions: str
    model: str
    tools: list[ToolInfo]
    handoffs: list[str]
    approval_timeout: timedelta | None = None


@dataclass(frozen=True)
class RegisteredAgent:
    """An agent with the service's options for it, listed where a plain `agents.Agent` would be.

    `approval_timeout`: how long each interruption of a run started with this agent may wait for
    a decision when CreateRun gives no `approval_timeout` (which wins); it wins over the
    service's `--approval-timeout`. None: the service's."""

    agent: Agent[Any]
    approval_timeout: timedelta | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.agent, Agent):
            raise TypeError(f"RegisteredAgent takes an agents.Agent, got {type(self.agent).__name__}")
        timeout = self.approval_timeout
        if timeout is not None and not MIN_APPROVAL_TIMEOUT <= timeout <= MAX_APPROVAL_TIMEOUT:
            raise ValueError(
                f"agent {self.agent.name!r}: approval_timeout must be from "
                f"{MIN_APPROVAL_TIMEOUT.total_seconds():g} s to {MAX_APPROVAL_TIMEOUT.days} days "
                f"(or None for the service's --approval-timeout); got {timeout.total_seconds():g} s"
            )


class AgentRegistry:
    def __init__(self, agents: Iterable[Agent[Any] | RegisteredAgent]) -> None:
        self._agents: dict[str, Agent[Any]] = {}
        self._approval_timeouts: dict[str, timedelta] = {}
        for entry in agents:
            registered = RegisteredAgent(entry) if isinstance(entry, Agent) else entry
            if not isinstance(registered, RegisteredAgent):
                raise TypeError(
                    f"expected agents.Agent or RegisteredAgent instances, got {type(entry).__name__}"
                )
            agent = registered.agent
            if agent.name in self._agents:
                raise ValueError(f"two agents are named {agent.name!r}; agent names must be unique")
            self._agents[agent.name] = agent
            if registered.approval_timeout is not None:
                self._approval_timeouts[agent.name] = registered.approval_timeout

    def get(self, name: str) -> Agent[Any]:
        try:
            return self._agents[name]
        except KeyError:
            known = ", ".join(sorted(self._agents)) or "none"
            raise NotFoundError(
                f"No agent is named {name!r}. Registered agents: {known}.", reason="AGENT_NOT_FOUND"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._agents)

    def describe(self, name: str) -> AgentInfo:
        return describe_agent(self.get(name), approval_timeout=self.approval_timeout(name))

    def approval_timeout(self, name: str) -> timedelta | None:
        """The default approval timeout of runs started with the agent `name`; None: the service's."""
        return self._approval_timeouts.get(name)

    def function_tool(self, agent_name: str, tool_name: str) -> FunctionTool | None:
        """The function tool `tool_name` of the agent named `agent_name`, among the registered
        agents and every agent reachable from them; None if there is none."""
        for agent in _reachable_agents(self._agents.values()):
            if agent.name != agent_name:
                continue
            for tool in agent.tools:
                if isinstance(tool, FunctionTool) and tool.name == tool_name:
                    return tool
        return None


def route_through_steps(agents: Iterable[Agent[Any]]) -> None:
    """Route through steps the function tools and model calls of `agents` and of every agent
    reachable from them, however: handoffs (an agent, or a `handoff(...)` object), agents used
    as tools, at any depth and through cycles. (A model named by a string is the run's
    StepModelProvider's to wrap; an agent's own `Model` object is wrapped here.)"""
    for agent in _reachable_agents(agents):
        for tool in agent.tools:
            if isinstance(tool, FunctionTool):
                route_tools_through_steps(tool)
        if isinstance(agent.model, Model) and not isinstance(agent.model, StepModel):
            agent.model = StepModel(agent.model, model_name_for(agent))


def _reachable_agents(roots: Iterable[Agent[Any]]) -> list[Agent[Any]]:
    """The agents and every agent reachable from them through handoffs and agents as tools."""
    found: dict[int, Agent[Any]] = {}
    pending = list(roots)
    while pending:
        agent = pending.pop()
        if id(agent) in found:
            continue
        found[id(agent)] = agent
        pending.extend(_next_agents(agent))
    return list(found.values())


def _next_agents(agent: Agent[Any]) -> list[Agent[Any]]:
    """The agents `agent` hands off to or calls as tools, as far as they can be known before
    a run. (A `Handoff` made by hand may pick its agent as it runs: the segment routes the tools
    of such an agent when it is handed off to; see `timestep.runtime.runner`.)"""
    targets: list[Any] = [
        handoff_agent(handoff) if isinstance(handoff, Handoff) else handoff for handoff in agent.handoffs
    ]
    # `Agent.as_tool()` makes a FunctionTool that runs its agent inside the tool call.
    targets.extend(tool_agent(tool) for tool in agent.tools if isinstance(tool, FunctionTool))
    return [target for target in targets if isinstance(target, Agent)]


def load_agents(reference: str) -> AgentRegistry:
    """Import `module:attribute`: a list of agents (each an `agents.Agent` or a `RegisteredAgent`),
    a single one, or a callable returning either."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"agents reference {reference!r} must look like 'package.module:attribute'")
    value: Any = getattr(importlib.import_module(module_name), attribute)
    if callable(value) and not isinstance(value, Agent | RegisteredAgent):
        value = value()
    return AgentRegistry([value] if isinstance(value, Agent | RegisteredAgent) else value)


def describe_agent(agent: Agent[Any], *, approval_timeout: timedelta | None = None) -> AgentInfo:
    tools = [
        ToolInfo(
            name=tool.name,
            description=tool.description,
            # A callable policy decides per call, so the tool may pause a run.
            needs_approval=bool(tool.needs_approval),
            parameters_json=json.dumps(tool.params_json_schema, sort_keys=True),
        )
        for tool in agent.tools
        if isinstance(tool, FunctionTool)
    ]
    handoffs = [h.agent_name if isinstance(h, Handoff) else h.name for h in agent.handoffs]
    return AgentInfo(
        name=agent.name,
        instructions=agent.instructions if isinstance(agent.instructions, str) else "",
        model=agent.model if isinstance(agent.model, str) else "",
        tools=tools,
        handoffs=handoffs,
        approval_timeout=approval_timeout,
    )
