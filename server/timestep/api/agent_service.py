"""AgentService: describes the registered agents."""

from __future__ import annotations

from grpc.aio import ServicerContext as Context
from timestep_client.v1 import agents_pb2, agents_pb2_grpc

from timestep.api import convert, validation
from timestep.api.errors import unary
from timestep.runtime.registry import AgentRegistry
from timestep.settings import Limits


class AgentService(agents_pb2_grpc.AgentServiceServicer):  # type: ignore[misc]
    def __init__(self, registry: AgentRegistry, limits: Limits) -> None:
        self._registry = registry
        self.limits = limits

    @unary
    async def ListAgents(
        self, request: agents_pb2.ListAgentsRequest, context: Context
    ) -> agents_pb2.ListAgentsResponse:
        return agents_pb2.ListAgentsResponse(
            agents=[convert.agent_to_proto(self._registry.describe(name)) for name in self._registry.names()]
        )

    @unary
    async def GetAgent(
        self, request: agents_pb2.GetAgentRequest, context: Context
    ) -> agents_pb2.GetAgentResponse:
        name = validation.require(request.name, "name", "pass an agent name from ListAgents")
        return agents_pb2.GetAgentResponse(agent=convert.agent_to_proto(self._registry.describe(name)))
