"""UsageService: model usage and estimated cost summed over a time range, by agent and model."""

from __future__ import annotations

from typing import Protocol

from timestep_client.v1 import usage_pb2

from timestep.api import convert, validation
from timestep.api.handlers.context import CallContext
from timestep.domain import UsageFilter, UsageSummary
from timestep.errors import InvalidArgumentError
from timestep.scope import Scope


class UsageSummaries(Protocol):
    """Where usage is summed (the store's `UsageStore`, given by the composition root)."""

    async def summarize(self, scope: Scope, usage_filter: UsageFilter) -> UsageSummary: ...


class UsageHandlers:
    def __init__(self, usage: UsageSummaries) -> None:
        self._usage = usage

    async def GetUsage(
        self, request: usage_pb2.GetUsageRequest, call: CallContext
    ) -> usage_pb2.GetUsageResponse:
        start = validation.optional_time(request, "start_time")
        end = validation.optional_time(request, "end_time")
        if start is not None and end is not None and end <= start:
            raise InvalidArgumentError(
                "end_time must be after start_time (or leave either unset for an open range).",
                field="end_time",
            )
        summary = await self._usage.summarize(
            call.scope, UsageFilter(start, end, request.agent, request.model)
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
