"""AgentService: describes the registered agents."""

from __future__ import annotations

from timestep_client.v1 import agents_pb2

from timestep.api import convert, validation
from timestep.api.handlers.context import CallContext
from timestep.runtime.registry import AgentRegistry


class AgentHandlers:
    def __init__(self, registry: AgentRegistry) -> None:
        self._registry = registry

    async def ListAgents(
        self, request: agents_pb2.ListAgentsRequest, call: CallContext
    ) -> agents_pb2.ListAgentsResponse:
        return agents_pb2.ListAgentsResponse(
            agents=[convert.agent_to_proto(self._registry.describe(name)) for name in self._registry.names()]
        )

    async def GetAgent(
        self, request: agents_pb2.GetAgentRequest, call: CallContext
    ) -> agents_pb2.GetAgentResponse:
        name = validation.require(request.name, "name", "pass an agent name from ListAgents")
        return agents_pb2.GetAgentResponse(agent=convert.agent_to_proto(self._registry.describe(name)))
