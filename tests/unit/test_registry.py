"""Loading agents from `module:attribute` references and describing them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from agents import (
    Agent,
    FunctionTool,
    Model,
    ModelResponse,
    ModelSettings,
    ModelTracing,
    RunContextWrapper,
    Usage,
    function_tool,
    handoff,
)
from agents.tool_context import ToolContext
from timestep.errors import NotFoundError
from timestep.runtime.registry import (
    AgentRegistry,
    RegisteredAgent,
    describe_agent,
    load_agents,
    route_through_steps,
)
from timestep.runtime.steps import current_model_call_sink, current_steps
from timestep.settings import DEFAULT_AGENTS

HERE = __name__


@function_tool
def lookup(city: str) -> str:
    """Look a city up."""
    return city


@function_tool(needs_approval=True)
def delete_everything(reason: str) -> str:
    """Delete everything, after a person approves."""
    return reason


async def _only_large_amounts(
    _context: RunContextWrapper[Any], params: dict[str, Any], _call_id: str
) -> bool:
    return float(params.get("amount", 0)) > 100


@function_tool(needs_approval=_only_large_amounts)
def pay(amount: float) -> str:
    """Pay an amount; large amounts need approval."""
    return str(amount)


helper = Agent(name="helper", instructions="Help.", model="gpt-fake")
router = Agent(
    name="router",
    instructions="Route.",
    model="gpt-fake",
    tools=[lookup, delete_everything, pay],
    handoffs=[helper],
)

AGENT_LIST: list[Agent[Any]] = [router, helper]
SINGLE_AGENT = helper
DUPLICATES: list[Agent[Any]] = [helper, Agent(name="helper", instructions="Another helper.")]
NOT_AGENTS: list[Any] = [helper, "not an agent"]
WITH_OPTIONS: list[Agent[Any] | RegisteredAgent] = [router, RegisteredAgent(helper, timedelta(minutes=5))]


def build_agents() -> list[Agent[Any]]:
    return [Agent(name="built", instructions="Built on demand.")]


def build_one_agent() -> Agent[Any]:
    return Agent(name="built_alone", instructions="Built on demand.")


def test_load_a_list_of_agents() -> None:
    registry = load_agents(f"{HERE}:AGENT_LIST")

    assert registry.names() == ["helper", "router"]
    assert registry.get("router") is router
    assert registry.get("helper") is helper


def test_load_a_single_agent() -> None:
    registry = load_agents(f"{HERE}:SINGLE_AGENT")

    assert registry.names() == ["helper"]
    assert registry.get("helper") is helper


@pytest.mark.parametrize(
    ("attribute", "names"), [("build_agents", ["built"]), ("build_one_agent", ["built_alone"])]
)
def test_load_from_a_callable(attribute: str, names: list[str]) -> None:
    assert load_agents(f"{HERE}:{attribute}").names() == names


def test_the_default_agents_load() -> None:
    registry = load_agents(DEFAULT_AGENTS)

    assert registry.names() == ["assistant", "billing"]


def test_a_registered_agent_gives_its_runs_a_default_approval_timeout() -> None:
    registry = load_agents(f"{HERE}:WITH_OPTIONS")

    assert registry.names() == ["helper", "router"]
    assert registry.get("helper") is helper
    assert registry.approval_timeout("helper") == timedelta(minutes=5)
    assert registry.describe("helper").approval_timeout == timedelta(minutes=5)
    assert registry.approval_timeout("router") is None
    assert registry.describe("router").approval_timeout is None


@pytest.mark.parametrize("timeout", [timedelta(milliseconds=500), timedelta(days=366)])
def test_an_agents_approval_timeout_out_of_range_is_an_error(timeout: timedelta) -> None:
    with pytest.raises(ValueError, match=r"agent 'helper': approval_timeout must be from 1 s to 365 days"):
        RegisteredAgent(helper, approval_timeout=timeout)


def test_duplicate_names_are_an_error() -> None:
    with pytest.raises(ValueError, match="two agents are named 'helper'"):
        load_agents(f"{HERE}:DUPLICATES")


def test_things_that_are_not_agents_are_an_error() -> None:
    with pytest.raises(TypeError, match=r"expected agents\.Agent or RegisteredAgent instances, got str"):
        load_agents(f"{HERE}:NOT_AGENTS")


@pytest.mark.parametrize("reference", ["no_colon_here", f"{HERE}:", ":AGENT_LIST", ""])
def test_a_malformed_reference_is_an_error(reference: str) -> None:
    with pytest.raises(ValueError, match=r"must look like 'package\.module:attribute'"):
        load_agents(reference)


def test_a_missing_module_is_an_error() -> None:
    with pytest.raises(ModuleNotFoundError):
        load_agents("tests.unit.no_such_module_here:AGENTS")


def test_a_missing_attribute_is_an_error() -> None:
    with pytest.raises(AttributeError, match="NO_SUCH_ATTRIBUTE"):
        load_agents(f"{HERE}:NO_SUCH_ATTRIBUTE")


def test_an_unknown_agent_is_not_found() -> None:
    registry = AgentRegistry(AGENT_LIST)

    with pytest.raises(NotFoundError, match="helper, router") as raised:
        registry.get("nobody")

    assert raised.value.reason == "AGENT_NOT_FOUND"


def test_describe_agent_flags_tools_that_need_approval() -> None:
    info = describe_agent(router)

    assert (info.name, info.instructions, info.model) == ("router", "Route.", "gpt-fake")
    assert info.handoffs == ["helper"]
    approvals = {tool.name: tool.needs_approval for tool in info.tools}
    assert approvals == {"lookup": False, "delete_everything": True, "pay": True}
    lookup_info = next(tool for tool in info.tools if tool.name == "lookup")
    assert lookup_info.description == "Look a city up."
    assert json.loads(lookup_info.parameters_json)["properties"] == {
        "city": {"title": "City", "type": "string"}
    }


def test_describe_the_default_agents() -> None:
    registry = load_agents(DEFAULT_AGENTS)

    assistant = registry.describe("assistant")
    billing = registry.describe("billing")

    assert {tool.name: tool.needs_approval for tool in assistant.tools} == {
        "get_weather": False,
        "send_email": True,
    }
    assert assistant.handoffs == ["billing"]
    assert {tool.name: tool.needs_approval for tool in billing.tools} == {"issue_refund": True}
    assert billing.handoffs == []


def test_describe_an_agent_with_dynamic_instructions_and_no_model() -> None:
    def instructions(_context: RunContextWrapper[Any], _agent: Agent[Any]) -> str:
        return "dynamic"

    info = describe_agent(Agent(name="dynamic", instructions=instructions))

    assert (info.instructions, info.model, info.tools, info.handoffs) == ("", "", [], [])


class RecordingSteps:
    """A StepRunner that notes which tools' calls reach it."""

    def __init__(self) -> None:
        self.tools: list[str] = []
        self.models: list[str] = []

    async def model_call(self, model_name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        self.models.append(model_name)
        return await call()

    async def tool_call(self, tool: FunctionTool, call_id: str, call: Callable[[], Awaitable[Any]]) -> Any:
        self.tools.append(tool.name)
        return await call()


def tool_for(name: str) -> FunctionTool:
    @function_tool(name_override=name)
    def tool() -> str:
        """A tool of the agent graph."""
        return name

    return tool


async def test_the_tools_of_every_agent_reachable_from_an_agent_are_journaled() -> None:
    # Through handoff(...) objects, plain handoffs, agents as tools, and a cycle back to the root.
    by_object = Agent(name="by_object", tools=[tool_for("object_tool")])
    as_tool_inner = Agent(name="inner", tools=[tool_for("inner_tool")])
    nested = Agent(name="nested", tools=[tool_for("nested_tool")], handoffs=[handoff(as_tool_inner)])
    expert = Agent(name="expert", tools=[tool_for("expert_tool")])
    root = Agent(name="root", tools=[tool_for("root_tool"), expert.as_tool("ask_expert", "Ask.")])
    by_object.handoffs = [handoff(nested), root]
    root.handoffs = [handoff(by_object)]
    route_through_steps([root])
    every = [
        tool
        for agent in (root, by_object, nested, as_tool_inner, expert)
        for tool in agent.tools
        if isinstance(tool, FunctionTool) and not tool._is_agent_tool
    ]

    steps = RecordingSteps()
    token = current_steps.set(steps)
    try:
        for tool in every:
            context = ToolContext(
                context=None, tool_name=tool.name, tool_call_id="call_1", tool_arguments="{}"
            )
            assert await tool.on_invoke_tool(context, "{}") == tool.name
    finally:
        current_steps.reset(token)

    assert sorted(steps.tools) == ["expert_tool", "inner_tool", "nested_tool", "object_tool", "root_tool"]


class CannedModel(Model):
    """An agent's own model object, answering one canned response."""

    model = "canned-1"

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return ModelResponse(output=[], usage=Usage(requests=1, input_tokens=5), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


async def test_the_calls_of_an_agents_own_model_object_go_through_steps_and_are_counted() -> None:
    agent = Agent(name="own_model", model=CannedModel())
    route_through_steps([agent, Agent(name="other", handoffs=[handoff(agent)])])
    route_through_steps([agent])  # wrapped once however often it is reached
    steps = RecordingSteps()
    counted: list[tuple[str | None, Any]] = []
    tokens = current_steps.set(steps), current_model_call_sink.set(lambda name, r: counted.append((name, r)))
    try:
        assert isinstance(agent.model, Model)
        await agent.model.get_response(
            None,
            [],
            ModelSettings(),
            [],
            None,
            [],
            ModelTracing.DISABLED,
            previous_response_id=None,
            conversation_id=None,
            prompt=None,
        )
    finally:
        current_steps.reset(tokens[0])
        current_model_call_sink.reset(tokens[1])

    assert steps.models == ["canned-1"]
    assert [(name, response.usage.input_tokens) for name, response in counted] == [("canned-1", 5)]
