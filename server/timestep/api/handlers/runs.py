"""RunService: proto in, domain calls on the orchestrator, proto out. Every call is scoped to
the caller's tenant (`CallContext.scope`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from timestep_client.v1 import runs_pb2

from timestep import ids
from timestep.api import convert, validation
from timestep.api.handlers.context import CallContext
from timestep.domain import InterruptionStatus, NewRun, RunFilter
from timestep.errors import FailedPreconditionError, InvalidArgumentError
from timestep.run_feed import FeedCursor
from timestep.runs.deletion import RunDeleter
from timestep.runs.orchestrator import RunOrchestrator
from timestep.settings import Limits
from timestep.state.errors import StateCodecError, UnsupportedStateError


class RunHandlers:
    def __init__(self, orchestrator: RunOrchestrator, deleter: RunDeleter, limits: Limits) -> None:
        self._runs = orchestrator
        self._deleter = deleter
        self._limits = limits

    async def CreateRun(
        self, request: runs_pb2.CreateRunRequest, call: CallContext
    ) -> runs_pb2.CreateRunResponse:
        new_run = replace(
            validation.new_run_from_create(request, self._limits),
            tenant=call.tenant,
            deadline=call.waiting_deadline(request.wait),
        )
        created = await self._runs.create(new_run, wait=request.wait)
        return runs_pb2.CreateRunResponse(
            run=convert.run_to_proto(created.run), webhook_secret=created.webhook_secret
        )

    async def GetRun(self, request: runs_pb2.GetRunRequest, call: CallContext) -> runs_pb2.GetRunResponse:
        run = await self._runs.get_run(call.scope, validation.require_run_id(request.run_id))
        return runs_pb2.GetRunResponse(run=convert.run_to_proto(run))

    async def ListRuns(
        self, request: runs_pb2.ListRunsRequest, call: CallContext
    ) -> runs_pb2.ListRunsResponse:
        run_filter = RunFilter(
            agent=request.agent,
            status=convert.run_status_from_proto(request.status),
            session_id=ids.session_id(request.session_id),
        )
        page = await self._runs.list_runs(call.scope, run_filter, request.page_size, request.page_token)
        return runs_pb2.ListRunsResponse(
            runs=[convert.run_to_proto(run) for run in page.items], next_page_token=page.next_page_token
        )

    async def StreamRunEvents(
        self, request: runs_pb2.StreamRunEventsRequest, call: CallContext
    ) -> AsyncIterator[runs_pb2.StreamRunEventsResponse]:
        run_id = validation.require_run_id(request.run_id)
        if request.after_sequence < 0:
            raise InvalidArgumentError(
                "after_sequence must be 0 (whole history) or the last sequence you received.",
                field="after_sequence",
            )
        async for event in self._runs.follow(call.scope, run_id, request.after_sequence):
            yield runs_pb2.StreamRunEventsResponse(event=convert.event_to_proto(event))

    async def WatchRuns(
        self, request: runs_pb2.WatchRunsRequest, call: CallContext
    ) -> AsyncIterator[runs_pb2.WatchRunsResponse]:
        cursor = FeedCursor.decode(request.cursor) if request.cursor else None
        async for change in self._runs.watch(call.scope, cursor):
            yield convert.feed_entry_to_proto(change)

    async def ListInterruptions(
        self, request: runs_pb2.ListInterruptionsRequest, call: CallContext
    ) -> runs_pb2.ListInterruptionsResponse:
        page = await self._runs.list_interruptions(
            call.scope, request.run_id, request.page_size, request.page_token
        )
        return runs_pb2.ListInterruptionsResponse(
            interruptions=[convert.interruption_to_proto(i) for i in page.items],
            next_page_token=page.next_page_token,
        )

    async def ApproveInterruption(
        self, request: runs_pb2.ApproveInterruptionRequest, call: CallContext
    ) -> runs_pb2.ApproveInterruptionResponse:
        interruption, run = await self._decide(
            request, call, InterruptionStatus.APPROVED, arguments_json=request.arguments_json
        )
        return runs_pb2.ApproveInterruptionResponse(interruption=interruption, run=run)

    async def RejectInterruption(
        self, request: runs_pb2.RejectInterruptionRequest, call: CallContext
    ) -> runs_pb2.RejectInterruptionResponse:
        interruption, run = await self._decide(
            request, call, InterruptionStatus.REJECTED, message=request.message
        )
        return runs_pb2.RejectInterruptionResponse(interruption=interruption, run=run)

    async def _decide(
        self,
        request: runs_pb2.ApproveInterruptionRequest | runs_pb2.RejectInterruptionRequest,
        call: CallContext,
        status: InterruptionStatus,
        *,
        arguments_json: str = "",
        message: str = "",
    ) -> tuple[runs_pb2.Interruption, runs_pb2.Run]:
        """An approval or a rejection, and the resume it may ask for (both requests share these
        fields)."""
        wait = request.resume and request.wait
        interruption, run = await self._runs.decide_and_resume(
            call.scope,
            validation.require_run_id(request.run_id),
            validation.require_interruption_id(request.interruption_id),
            status,
            always=request.always,
            arguments_json=arguments_json,
            message=message,
            decided_by=request.decided_by,
            resume=request.resume,
            wait=wait,
            deadline=call.waiting_deadline(wait),
        )
        return convert.interruption_to_proto(interruption), convert.run_to_proto(run)

    async def ResumeRun(
        self, request: runs_pb2.ResumeRunRequest, call: CallContext
    ) -> runs_pb2.ResumeRunResponse:
        run = await self._runs.resume_run(
            call.scope,
            validation.require_run_id(request.run_id),
            wait=request.wait,
            deadline=call.waiting_deadline(request.wait),
        )
        return runs_pb2.ResumeRunResponse(run=convert.run_to_proto(run))

    async def CancelRun(
        self, request: runs_pb2.CancelRunRequest, call: CallContext
    ) -> runs_pb2.CancelRunResponse:
        run = await self._runs.cancel_run(
            call.scope, validation.require_run_id(request.run_id), request.reason
        )
        return runs_pb2.CancelRunResponse(run=convert.run_to_proto(run))

    async def GetRunState(
        self, request: runs_pb2.GetRunStateRequest, call: CallContext
    ) -> runs_pb2.GetRunStateResponse:
        try:
            export = await self._runs.get_run_state(
                call.scope,
                validation.require_run_id(request.run_id),
                convert.state_format_from_proto(request.format),
            )
        except UnsupportedStateError as error:
            # The run's stored state, not the request, is what cannot be converted.
            raise FailedPreconditionError(error.message, reason="STATE_NOT_CONVERTIBLE") from error
        return runs_pb2.GetRunStateResponse(
            state_json=convert.proto_string(export.state_json, json_text=True),
            schema_version=export.schema_version,
            agent=export.agent,
            format=convert.state_format_to_proto(export.state_format),
            session_id=export.session_id,
        )

    async def ImportRunState(
        self, request: runs_pb2.ImportRunStateRequest, call: CallContext
    ) -> runs_pb2.ImportRunStateResponse:
        agent = validation.require(request.agent, "agent", "name the registered agent the state belongs to")
        state_json = validation.require_state_json(request.state_json)
        new_run = NewRun(
            agent=agent,
            input=[],
            session_id=ids.session_id(request.session_id),
            metadata=dict(request.metadata),
            tenant=call.tenant,
            approval=validation.approval_policy(request),
        )
        try:
            run, snapshot = await self._runs.import_run_state(
                new_run, state_json, max_message_bytes=self._limits.max_text_bytes
            )
        except StateCodecError as error:
            raise InvalidArgumentError(error.message, field="state_json", reason=error.reason) from error
        return runs_pb2.ImportRunStateResponse(
            run=convert.run_to_proto(run),
            format=convert.state_format_to_proto(snapshot.writer),
            schema_version=snapshot.schema_version,
        )

    async def DeleteRun(
        self, request: runs_pb2.DeleteRunRequest, call: CallContext
    ) -> runs_pb2.DeleteRunResponse:
        deleted = await self._deleter.delete_run(
            call.scope,
            validation.require_run_id(request.run_id),
            force=request.force,
            allow_missing=request.allow_missing,
        )
        if deleted is None:
            return runs_pb2.DeleteRunResponse(deleted=False)
        return runs_pb2.DeleteRunResponse(deleted=True, deleted_session_items=deleted.session_items)

    async def KeepRun(self, request: runs_pb2.KeepRunRequest, call: CallContext) -> runs_pb2.KeepRunResponse:
        run_id = validation.require_run_id(request.run_id)
        await self._deleter.keep(call.scope, run_id, request.keep)
        return runs_pb2.KeepRunResponse(
            run=convert.run_to_proto(await self._runs.get_run(call.scope, run_id))
        )
