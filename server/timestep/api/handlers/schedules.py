"""ScheduleService: cron schedules that create runs."""

from __future__ import annotations

from timestep_client.v1 import schedules_pb2

from timestep import ids
from timestep.api import convert, validation
from timestep.api.handlers.context import CallContext
from timestep.domain import Schedule, ScheduleSpec
from timestep.runs.schedules import Schedules


def schedule_to_proto(schedule: Schedule) -> schedules_pb2.Schedule:
    spec = schedule.spec
    return schedules_pb2.Schedule(
        id=schedule.id,
        cron=spec.cron,
        timezone=spec.timezone,
        agent=spec.agent,
        input=spec.input,
        model=spec.model,
        metadata=spec.metadata,
        state=f"SCHEDULE_STATE_{schedule.state.name}",
        last_fire_time=convert.timestamp(schedule.last_fire_time),
        missed_fires=schedule.missed_fires,
        last_missed_time=convert.timestamp(schedule.last_missed_time),
    )


class ScheduleHandlers:
    def __init__(self, schedules: Schedules) -> None:
        self._schedules = schedules

    async def CreateSchedule(
        self, request: schedules_pb2.CreateScheduleRequest, call: CallContext
    ) -> schedules_pb2.CreateScheduleResponse:
        spec = ScheduleSpec(
            cron=validation.require(request.cron, "cron", 'give a cron expression such as "0 9 * * 1-5"'),
            timezone=request.timezone,
            agent=validation.require(
                request.agent, "agent", "name a registered agent (see AgentService.ListAgents)"
            ),
            input=request.input,
            model=request.model,
            metadata=dict(request.metadata),
        )
        schedule_id = ids.schedule_id(request.schedule_id, required=False)
        schedule = await self._schedules.create(schedule_id, spec, tenant=call.tenant)
        return schedules_pb2.CreateScheduleResponse(schedule=schedule_to_proto(schedule))

    async def GetSchedule(
        self, request: schedules_pb2.GetScheduleRequest, call: CallContext
    ) -> schedules_pb2.GetScheduleResponse:
        schedule = await self._schedules.get(ids.schedule_id(request.schedule_id), tenant=call.tenant)
        return schedules_pb2.GetScheduleResponse(schedule=schedule_to_proto(schedule))

    async def ListSchedules(
        self, request: schedules_pb2.ListSchedulesRequest, call: CallContext
    ) -> schedules_pb2.ListSchedulesResponse:
        page = await self._schedules.list(
            tenant=call.tenant, page_size=request.page_size, page_token=request.page_token
        )
        return schedules_pb2.ListSchedulesResponse(
            schedules=[schedule_to_proto(s) for s in page.items], next_page_token=page.next_page_token
        )

    async def PauseSchedule(
        self, request: schedules_pb2.PauseScheduleRequest, call: CallContext
    ) -> schedules_pb2.PauseScheduleResponse:
        schedule = await self._schedules.pause(ids.schedule_id(request.schedule_id), tenant=call.tenant)
        return schedules_pb2.PauseScheduleResponse(schedule=schedule_to_proto(schedule))

    async def ResumeSchedule(
        self, request: schedules_pb2.ResumeScheduleRequest, call: CallContext
    ) -> schedules_pb2.ResumeScheduleResponse:
        schedule = await self._schedules.resume(ids.schedule_id(request.schedule_id), tenant=call.tenant)
        return schedules_pb2.ResumeScheduleResponse(schedule=schedule_to_proto(schedule))

    async def DeleteSchedule(
        self, request: schedules_pb2.DeleteScheduleRequest, call: CallContext
    ) -> schedules_pb2.DeleteScheduleResponse:
        await self._schedules.delete(ids.schedule_id(request.schedule_id), tenant=call.tenant)
        return schedules_pb2.DeleteScheduleResponse()
