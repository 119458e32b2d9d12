"""Schedules as DBOS schedules: DBOS keeps them in its tables and fires each tick once across
replicas; every firing runs the `fire_schedule` workflow, which creates an ordinary run.

A firing's run uses the request id "schedule/<id>/<scheduled time>", so a firing that is
retried (recovery) finds its run instead of creating a second one.

DBOS names schedules globally; a tenant's schedule "<id>" is the DBOS schedule "<tenant>/<id>"
('/' is not allowed in ids, so names cannot collide) and its context names the tenant.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from dbos import DBOS

from timestep.domain import NewRun, Schedule, ScheduleSpec, ScheduleState
from timestep.durability import workflows
from timestep.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from timestep.runs.orchestrator import RunOrchestrator
from timestep.runtime.registry import AgentRegistry

SCHEDULE_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def _validate(schedule_id: str, spec: ScheduleSpec) -> None:
    if not SCHEDULE_ID.match(schedule_id):
        raise InvalidArgumentError(
            "schedule_id may use letters, digits, '-', '_' and '.', at most 100 characters.",
            field="schedule_id",
        )
    if not croniter.is_valid(spec.cron, second_at_beginning=True):
        raise InvalidArgumentError(
            f"cron {spec.cron!r} is not a cron expression. Use five fields (minute hour day month "
            'weekday) or six with seconds first, e.g. "0 9 * * 1-5" or "*/5 * * * * *".',
            field="cron",
        )
    if spec.timezone:
        try:
            ZoneInfo(spec.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise InvalidArgumentError(
                f"timezone {spec.timezone!r} is not an IANA time zone such as 'Europe/Paris'.",
                field="timezone",
            ) from error
    if not spec.input.strip():
        raise InvalidArgumentError(
            "input is required: the text each scheduled run starts with.", field="input"
        )


def _dbos_name(schedule_id: str, tenant: str) -> str:
    return f"{tenant}/{schedule_id}" if tenant else schedule_id


def _schedule_from(row: Any) -> Schedule:
    spec = ScheduleSpec(**row["context"]["spec"])
    last = row["last_fired_at"]
    return Schedule(
        id=row["context"]["schedule_id"],
        spec=spec,
        state=ScheduleState.ACTIVE if row["status"] == "ACTIVE" else ScheduleState.PAUSED,
        last_fire_time=datetime.fromisoformat(last) if last else None,
    )


class DurableSchedules:
    def __init__(self, orchestrator: RunOrchestrator, registry: AgentRegistry) -> None:
        self._orchestrator = orchestrator
        self._registry = registry

    async def fire(self, scheduled_time: datetime, context: Any) -> None:
        """Create the run of one firing (bound as the `fire_schedule` workflow's body)."""
        spec = ScheduleSpec(**context["spec"])
        schedule_id = context["schedule_id"]
        stamp = scheduled_time.isoformat()
        tenant = context.get("tenant", "")
        await self._orchestrator.create_run(
            NewRun(
                agent=spec.agent,
                input=spec.input,
                model=spec.model,
                request_id=f"schedule/{schedule_id}/{stamp}",
                metadata={**spec.metadata, "schedule_id": schedule_id, "scheduled_time": stamp},
                tenant=tenant,
            ),
            wait=False,
        )

    async def create(self, schedule_id: str, spec: ScheduleSpec, *, tenant: str) -> Schedule:
        schedule_id = schedule_id or f"sch_{uuid.uuid4().hex[:16]}"
        _validate(schedule_id, spec)
        self._registry.get(spec.agent)  # NOT_FOUND for an unknown agent
        if await DBOS.get_schedule_async(_dbos_name(schedule_id, tenant)) is not None:
            raise AlreadyExistsError(
                f"A schedule with id {schedule_id!r} exists already; choose another id or delete it first.",
                reason="SCHEDULE_EXISTS",
            )
        await DBOS.create_schedule_async(
            schedule_name=_dbos_name(schedule_id, tenant),
            workflow_fn=workflows.fire_schedule,
            schedule=spec.cron,
            context={"schedule_id": schedule_id, "tenant": tenant, "spec": asdict(spec)},
            cron_timezone=spec.timezone or None,
        )
        return await self.get(schedule_id, tenant=tenant)

    async def get(self, schedule_id: str, *, tenant: str) -> Schedule:
        row = await DBOS.get_schedule_async(_dbos_name(schedule_id, tenant))
        if row is None:
            raise NotFoundError(
                f"No schedule has id {schedule_id!r}. List them with ScheduleService.ListSchedules.",
                reason="SCHEDULE_NOT_FOUND",
            )
        return _schedule_from(row)

    async def list(self, *, tenant: str) -> list[Schedule]:
        rows = await DBOS.list_schedules_async(workflow_name=workflows.FIRE_SCHEDULE)
        mine = (row for row in rows if row["context"].get("tenant", "") == tenant)
        return sorted((_schedule_from(row) for row in mine), key=lambda s: s.id)

    async def pause(self, schedule_id: str, *, tenant: str) -> Schedule:
        await self.get(schedule_id, tenant=tenant)
        await asyncio.to_thread(DBOS.pause_schedule, _dbos_name(schedule_id, tenant))
        return await self.get(schedule_id, tenant=tenant)

    async def resume(self, schedule_id: str, *, tenant: str) -> Schedule:
        await self.get(schedule_id, tenant=tenant)
        await asyncio.to_thread(DBOS.resume_schedule, _dbos_name(schedule_id, tenant))
        return await self.get(schedule_id, tenant=tenant)

    async def delete(self, schedule_id: str, *, tenant: str) -> None:
        await self.get(schedule_id, tenant=tenant)
        await DBOS.delete_schedule_async(_dbos_name(schedule_id, tenant))
