"""Each RPC implemented once, for every transport: a handler takes the request message and a
`CallContext` and returns the response message (or, for a server-streaming RPC, an async iterator
of them), raising `TimestepError`s for what the caller did wrong. Handlers import no transport;
each transport serves `services(...)` through one generic adapter (`timestep.api.grpc`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from timestep_client.v1 import agents_pb2, runs_pb2, schedules_pb2, sessions_pb2, usage_pb2, webhooks_pb2

from timestep.api.handlers.agents import AgentHandlers
from timestep.api.handlers.context import CallContext
from timestep.api.handlers.runs import RunHandlers
from timestep.api.handlers.schedules import ScheduleHandlers
from timestep.api.handlers.sessions import SessionHandlers, SessionReads
from timestep.api.handlers.usage import UsageHandlers, UsageSummaries
from timestep.api.handlers.webhooks import WebhookHandlers
from timestep.api.validation import check_request
from timestep.runs.deletion import RunDeleter
from timestep.runs.orchestrator import RunOrchestrator
from timestep.runs.schedules import Schedules
from timestep.runtime.registry import AgentRegistry
from timestep.settings import Limits
from timestep.webhooks.service import Webhooks

UnaryHandler = Callable[[Any, CallContext], Awaitable[Message]]
StreamHandler = Callable[[Any, CallContext], AsyncIterator[Message]]


@dataclass(frozen=True)
class Service:
    """A service of the contract and the object whose methods, named as its RPCs, serve it."""

    descriptor: ServiceDescriptor
    handlers: object

    def handler(self, method: MethodDescriptor) -> Callable[[Any, CallContext], Any]:
        """The handler of `method` (AttributeError at start-up if an RPC has none)."""
        handler: Callable[[Any, CallContext], Any] = getattr(self.handlers, method.name)
        return handler


def services(
    orchestrator: RunOrchestrator,
    registry: AgentRegistry,
    usage: UsageSummaries,
    schedules: Schedules,
    webhooks: Webhooks | None,
    limits: Limits,
    sessions: SessionReads,
    deleter: RunDeleter,
) -> list[Service]:
    """Every service of the contract with its handlers."""
    return [
        Service(
            runs_pb2.DESCRIPTOR.services_by_name["RunService"], RunHandlers(orchestrator, deleter, limits)
        ),
        Service(
            sessions_pb2.DESCRIPTOR.services_by_name["SessionService"], SessionHandlers(sessions, deleter)
        ),
        Service(agents_pb2.DESCRIPTOR.services_by_name["AgentService"], AgentHandlers(registry)),
        Service(usage_pb2.DESCRIPTOR.services_by_name["UsageService"], UsageHandlers(usage)),
        Service(schedules_pb2.DESCRIPTOR.services_by_name["ScheduleService"], ScheduleHandlers(schedules)),
        Service(webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"], WebhookHandlers(webhooks)),
    ]


async def call_unary(handler: UnaryHandler, request: Message, call: CallContext, limits: Limits) -> Message:
    """`handler`'s response to `request`, once the request is within `limits` (`check_request`)."""
    check_request(request, limits)
    return await handler(request, call)


async def call_server_streaming(
    handler: StreamHandler, request: Message, call: CallContext, limits: Limits
) -> AsyncIterator[Message]:
    """`handler`'s responses to `request`, once the request is within `limits`."""
    check_request(request, limits)
    async for response in handler(request, call):
        yield response
