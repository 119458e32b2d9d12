"""Handlers run without any transport: a request message and a CallContext in, a response
message out, domain errors raised as themselves (each transport renders them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from timestep.api.errors import describe
from timestep.api.handlers.agents import AgentHandlers
from timestep.api.handlers.context import CallContext
from timestep.errors import InvalidArgumentError, NotFoundError
from timestep.runtime.registry import load_agents
from timestep.scope import Scope
from timestep.settings import DEFAULT_AGENTS
from timestep_client.v1 import agents_pb2


async def test_a_handler_answers_without_a_transport() -> None:
    registry = load_agents(DEFAULT_AGENTS)
    handlers = AgentHandlers(registry)

    listed = await handlers.ListAgents(agents_pb2.ListAgentsRequest(), CallContext(tenant="acme"))
    [first, *_] = registry.names()
    got = await handlers.GetAgent(agents_pb2.GetAgentRequest(name=first), CallContext(tenant="acme"))

    assert [agent.name for agent in listed.agents] == registry.names()
    assert got.agent.name == first


async def test_a_handler_raises_domain_errors_for_any_transport_to_render() -> None:
    handlers = AgentHandlers(load_agents(DEFAULT_AGENTS))

    with pytest.raises(InvalidArgumentError) as missing:
        await handlers.GetAgent(agents_pb2.GetAgentRequest(), CallContext(tenant=""))
    with pytest.raises(NotFoundError) as unknown:
        await handlers.GetAgent(agents_pb2.GetAgentRequest(name="nobody"), CallContext(tenant=""))

    assert describe(missing.value).code_name == "INVALID_ARGUMENT"
    assert describe(unknown.value).code_name == "NOT_FOUND"


def test_the_call_context_scopes_to_its_tenant_and_gives_its_deadline_only_to_waiters() -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    call = CallContext(tenant="acme", deadline=deadline)

    assert call.scope == Scope.tenant("acme")
    assert call.waiting_deadline(True) == deadline
    assert call.waiting_deadline(False) is None
