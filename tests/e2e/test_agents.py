"""AgentService: which agents the service runs, their tools, approvals and handoffs."""

from __future__ import annotations

import json

import grpc
from timestep_client import TimestepClient

from timestep_testing.helpers import expect_rpc_error


async def test_list_agents_returns_the_assistant_and_the_billing_agent(client: TimestepClient) -> None:
    agents = await client.list_agents()

    assert [agent.name for agent in agents] == ["assistant", "billing"]


async def test_get_agent_describes_tools_with_their_approval_policy_and_handoffs(
    client: TimestepClient,
) -> None:
    agent = await client.get_agent("assistant")

    assert agent.name == "assistant"
    assert agent.model == "gpt-4.1"
    assert agent.instructions.startswith("You are a helpful assistant.")
    assert {tool.name: tool.needs_approval for tool in agent.tools} == {
        "get_weather": False,
        "send_email": True,
    }
    assert list(agent.handoffs) == ["billing"]
    weather = next(tool for tool in agent.tools if tool.name == "get_weather")
    assert weather.description == "Get the current weather for a city."
    assert json.loads(weather.parameters_json)["properties"].keys() == {"city"}


async def test_the_billing_agent_needs_approval_for_every_refund_and_hands_off_to_no_one(
    client: TimestepClient,
) -> None:
    agent = await client.get_agent("billing")

    assert {tool.name: tool.needs_approval for tool in agent.tools} == {"issue_refund": True}
    assert list(agent.handoffs) == []


async def test_get_agent_of_an_unknown_name_is_not_found(client: TimestepClient) -> None:
    failure = await expect_rpc_error(client.get_agent("nope"), grpc.StatusCode.NOT_FOUND)

    assert "assistant" in (failure.details() or ""), "the error lists the registered agents"
