"""RunService: proto in, domain calls on the orchestrator, proto out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from grpc.aio import ServicerContext as Context
from timestep_client.v1 import runs_pb2, runs_pb2_grpc

from timestep.api import convert
from timestep.api.errors import server_streaming, unary
from timestep.domain import InterruptionStatus, NewRun, RunFilter
from timestep.errors import InvalidArgumentError
from timestep.runs.orchestrator import RunOrchestrator


class RunService(runs_pb2_grpc.RunServiceServicer):  # type: ignore[misc]
    def __init__(self, orchestrator: RunOrchestrator) -> None:
        self._runs = orchestrator

    @unary
    async def CreateRun(
        self, request: runs_pb2.CreateRunRequest, context: Context
    ) -> runs_pb2.CreateRunResponse:
        new_run = convert.new_run_from_create(request)
        run = await self._runs.create_run(new_run, wait=request.wait)
        return runs_pb2.CreateRunResponse(run=convert.run_to_proto(run))

    @unary
    async def GetRun(self, request: runs_pb2.GetRunRequest, context: Context) -> runs_pb2.GetRunResponse:
        run = await self._runs.get_run(convert.require_run_id(request.run_id))
        return runs_pb2.GetRunResponse(run=convert.run_to_proto(run))

    @unary
    async def ListRuns(
        self, request: runs_pb2.ListRunsRequest, context: Context
    ) -> runs_pb2.ListRunsResponse:
        run_filter = RunFilter(
            agent=request.agent,
            status=convert.run_status_from_proto(request.status),
            session_id=request.session_id,
        )
        page = await self._runs.list_runs(run_filter, request.page_size, request.page_token)
        return runs_pb2.ListRunsResponse(
            runs=[convert.run_to_proto(run) for run in page.items], next_page_token=page.next_page_token
        )

    @server_streaming
    async def StreamRunEvents(
        self, request: runs_pb2.StreamRunEventsRequest, context: Context
    ) -> AsyncIterator[runs_pb2.StreamRunEventsResponse]:
        run_id = convert.require_run_id(request.run_id)
        if request.after_sequence < 0:
            raise InvalidArgumentError(
                "after_sequence must be 0 (whole history) or the last sequence you received.",
                field="after_sequence",
            )
        async for event in self._runs.follow(run_id, request.after_sequence):
            yield runs_pb2.StreamRunEventsResponse(event=convert.event_to_proto(event))

    @unary
    async def ListInterruptions(
        self, request: runs_pb2.ListInterruptionsRequest, context: Context
    ) -> runs_pb2.ListInterruptionsResponse:
        page = await self._runs.list_interruptions(
            convert.optional_id(request.run_id, "run_id"), request.page_size, request.page_token
        )
        return runs_pb2.ListInterruptionsResponse(
            interruptions=[convert.interruption_to_proto(i) for i in page.items],
            next_page_token=page.next_page_token,
        )

    @unary
    async def ApproveInterruption(
        self, request: runs_pb2.ApproveInterruptionRequest, context: Context
    ) -> runs_pb2.ApproveInterruptionResponse:
        interruption = await self._runs.decide(
            convert.require_run_id(request.run_id),
            _require_interruption_id(request.interruption_id),
            InterruptionStatus.APPROVED,
            always=request.always,
        )
        return runs_pb2.ApproveInterruptionResponse(interruption=convert.interruption_to_proto(interruption))

    @unary
    async def RejectInterruption(
        self, request: runs_pb2.RejectInterruptionRequest, context: Context
    ) -> runs_pb2.RejectInterruptionResponse:
        interruption = await self._runs.decide(
            convert.require_run_id(request.run_id),
            _require_interruption_id(request.interruption_id),
            InterruptionStatus.REJECTED,
            always=request.always,
            message=request.message,
        )
        return runs_pb2.RejectInterruptionResponse(interruption=convert.interruption_to_proto(interruption))

    @unary
    async def ResumeRun(
        self, request: runs_pb2.ResumeRunRequest, context: Context
    ) -> runs_pb2.ResumeRunResponse:
        run = await self._runs.resume_run(convert.require_run_id(request.run_id), wait=request.wait)
        return runs_pb2.ResumeRunResponse(run=convert.run_to_proto(run))

    @unary
    async def CancelRun(
        self, request: runs_pb2.CancelRunRequest, context: Context
    ) -> runs_pb2.CancelRunResponse:
        run = await self._runs.cancel_run(convert.require_run_id(request.run_id), request.reason)
        return runs_pb2.CancelRunResponse(run=convert.run_to_proto(run))

    @unary
    async def GetRunState(
        self, request: runs_pb2.GetRunStateRequest, context: Context
    ) -> runs_pb2.GetRunStateResponse:
        export = await self._runs.get_run_state(
            convert.require_run_id(request.run_id), convert.state_format_from_proto(request.format)
        )
        return runs_pb2.GetRunStateResponse(
            state_json=export.state_json,
            schema_version=export.schema_version,
            agent=export.agent,
            format=convert.state_format_to_proto(export.state_format),
            session_id=export.session_id,
        )

    @unary
    async def ImportRunState(
        self, request: runs_pb2.ImportRunStateRequest, context: Context
    ) -> runs_pb2.ImportRunStateResponse:
        agent = convert.require(request.agent, "agent", "name the registered agent the state belongs to")
        if not request.state_json.strip():
            raise InvalidArgumentError(
                "state_json is required: pass the string RunState.to_string() returned.", field="state_json"
            )
        new_run = NewRun(
            agent=agent,
            input=[],
            session_id=convert.optional_id(request.session_id, "session_id"),
            metadata=convert.metadata_from_proto(request.metadata),
        )
        run, snapshot = await self._runs.import_run_state(new_run, request.state_json)
        return runs_pb2.ImportRunStateResponse(
            run=convert.run_to_proto(run),
            format=convert.state_format_to_proto(snapshot.writer),
            schema_version=snapshot.schema_version,
        )


def _require_interruption_id(interruption_id: str) -> str:
    return convert.require(
        interruption_id, "interruption_id", "pass an id from Run.interruptions or ListInterruptions"
    )
