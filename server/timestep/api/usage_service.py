"""UsageService: model usage and estimated cost summed over a time range, by agent and model."""

from __future__ import annotations

from grpc.aio import ServicerContext as Context
from timestep_client.v1 import usage_pb2, usage_pb2_grpc

from timestep.api import convert, validation
from timestep.api.auth import current_scope
from timestep.api.errors import unary
from timestep.domain import UsageFilter
from timestep.errors import InvalidArgumentError
from timestep.settings import Limits
from timestep.store.usage import UsageStore


class UsageService(usage_pb2_grpc.UsageServiceServicer):  # type: ignore[misc]
    def __init__(self, usage: UsageStore, limits: Limits) -> None:
        self._usage = usage
        self.limits = limits

    @unary
    async def GetUsage(
        self, request: usage_pb2.GetUsageRequest, context: Context
    ) -> usage_pb2.GetUsageResponse:
        start = validation.optional_time(request, "start_time")
        end = validation.optional_time(request, "end_time")
        if start is not None and end is not None and end <= start:
            raise InvalidArgumentError(
                "end_time must be after start_time (or leave either unset for an open range).",
                field="end_time",
            )
        summary = await self._usage.summarize(
            current_scope(), UsageFilter(start, end, request.agent, request.model)
        )
        return usage_pb2.GetUsageResponse(
            total=convert.usage_to_proto(summary.total),
            run_count=summary.run_count,
            groups=[
                usage_pb2.UsageGroup(
                    agent=group.agent,
                    model=group.model,
                    usage=convert.usage_to_proto(group.usage),
                    run_count=group.run_count,
                )
                for group in summary.groups
            ],
        )
