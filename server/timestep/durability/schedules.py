"""Schedules as DBOS schedules: DBOS keeps them in its tables and fires each tick once across
replicas; every firing runs the `fire_schedule` workflow, which creates an ordinary run.

A firing's run uses the request id "schedule/<id>/<scheduled time>", so a firing that is
retried (recovery) finds its run instead of creating a second one. The run counts against the
tenant's maximum of active runs: a firing without room is skipped and counted as missed.

DBOS names schedules globally; a tenant's schedule "<id>" is the DBOS schedule "<tenant>/<id>"
(`ids.scoped`, "/<id>" for the anonymous tenant) and its context names the tenant.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from dbos import DBOS

from timestep import ids
from timestep.domain import NewRun, Page, Schedule, ScheduleSpec, ScheduleState
from timestep.durability import workflows
from timestep.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from timestep.runs.orchestrator import RunOrchestrator
from timestep.runtime.registry import AgentRegistry
from timestep.settings import ScheduleLimits
from timestep.store.pages import clamp_page_size, decode_page_token, encode_page_token
from timestep.store.schedules import NO_MISSES, ScheduleStore

log = logging.getLogger(__name__)

# Consecutive firings compared to find a cron expression's shortest interval: a cron's
# shortest gap shows within its first few firings from any start, so 100 is ample.
_FIRINGS_CHECKED = 100
_PAGE_SCOPE = "schedules"


def shortest_interval_s(cron: str, timezone: str) -> float:
    """The shortest time between two consecutive firings of `cron` (seconds), as the clock of
    `timezone` runs (a daylight saving change can bring two firings closer)."""
    firings = croniter(cron, datetime.now(ZoneInfo(timezone or "UTC")), second_at_beginning=True)
    previous: datetime = firings.get_next(datetime)
    shortest = math.inf
    for _ in range(_FIRINGS_CHECKED):
        current: datetime = firings.get_next(datetime)
        shortest = min(shortest, (current - previous).total_seconds())
        previous = current
    return shortest


def _validate(spec: ScheduleSpec, limits: ScheduleLimits) -> None:
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
    try:
        shortest = shortest_interval_s(spec.cron, spec.timezone)
    except CroniterBadDateError as error:  # e.g. "0 0 30 2 *": February has no 30th
        raise InvalidArgumentError(
            f"cron {spec.cron!r} never fires: no date matches it.", field="cron"
        ) from error
    if shortest < limits.min_interval_s:
        raise InvalidArgumentError(
            f"cron {spec.cron!r} fires as often as every {shortest:g} s; this service allows at "
            f"least {limits.min_interval_s:g} s between firings (--min-schedule-interval).",
            field="cron",
            reason="SCHEDULE_TOO_FREQUENT",
        )


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
    def __init__(
        self,
        orchestrator: RunOrchestrator,
        registry: AgentRegistry,
        store: ScheduleStore,
        *,
        limits: ScheduleLimits,
        max_active_runs: int,
    ) -> None:
        self._orchestrator = orchestrator
        self._registry = registry
        self._store = store
        self._limits = limits
        # The run store enforces it; named here in the log of a firing it refused.
        self._max_active_runs = max_active_runs

    async def fire(self, scheduled_time: datetime, context: Any) -> None:
        """Create the run of one firing (bound as the `fire_schedule` workflow's body), or count
        the firing as missed when the tenant has no room for another active run."""
        spec = ScheduleSpec(**context["spec"])
        schedule_id = context["schedule_id"]
        stamp = scheduled_time.isoformat()
        tenant = context.get("tenant", "")
        try:
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
        except ResourceExhaustedError:
            if await self._store.record_miss(tenant, schedule_id, scheduled_time):
                log.warning(
                    "schedule %r of tenant %r skipped its firing at %s: the tenant has %d runs "
                    "queued or running (--max-active-runs)",
                    schedule_id,
                    tenant,
                    stamp,
                    self._max_active_runs,
                )

    async def create(self, schedule_id: str, spec: ScheduleSpec, *, tenant: str) -> Schedule:
        schedule_id = schedule_id or f"sch_{uuid.uuid4().hex[:16]}"
        _validate(spec, self._limits)
        self._registry.get(spec.agent)  # NOT_FOUND for an unknown agent
        name = ids.scoped(tenant, schedule_id)
        async with self._store.tenant_lock(tenant):
            if await DBOS.get_schedule_async(name) is not None:
                raise AlreadyExistsError(
                    f"A schedule with id {schedule_id!r} exists already; choose another id or delete "
                    "it first.",
                    reason="SCHEDULE_EXISTS",
                )
            limit = self._limits.max_schedules
            if limit and len(await self._rows(tenant)) >= limit:
                raise FailedPreconditionError(
                    f"This tenant has {limit} schedules, the most this service allows "
                    "(--max-schedules); delete one first.",
                    reason="TOO_MANY_SCHEDULES",
                    subject="timestep.v1.ScheduleService",
                )
            await self._store.forget_misses(tenant, schedule_id)  # of a deleted namesake
            await DBOS.create_schedule_async(
                schedule_name=name,
                workflow_fn=workflows.fire_schedule,
                schedule=spec.cron,
                context={"schedule_id": schedule_id, "tenant": tenant, "spec": asdict(spec)},
                cron_timezone=spec.timezone or None,
            )
        return await self.get(schedule_id, tenant=tenant)

    async def _rows(self, tenant: str) -> list[Any]:
        """The tenant's DBOS schedules. DBOS filters by name prefix in SQL with LIKE, where '_'
        (allowed in tenant names) matches any character: the exact prefix is checked again."""
        prefix = ids.tenant_prefix(tenant)
        rows = await DBOS.list_schedules_async(
            workflow_name=workflows.FIRE_SCHEDULE, schedule_name_prefix=prefix
        )
        return [row for row in rows if row["schedule_name"].startswith(prefix)]

    async def _with_misses(self, schedules: list[Schedule], tenant: str) -> list[Schedule]:
        misses = await self._store.misses(tenant, [s.id for s in schedules])
        counted = []
        for schedule in schedules:
            missed = misses.get(schedule.id, NO_MISSES)
            counted.append(replace(schedule, missed_fires=missed.count, last_missed_time=missed.last_time))
        return counted

    async def get(self, schedule_id: str, *, tenant: str) -> Schedule:
        row = await DBOS.get_schedule_async(ids.scoped(tenant, schedule_id))
        if row is None:
            raise NotFoundError(
                f"No schedule has id {schedule_id!r}. List them with ScheduleService.ListSchedules.",
                reason="SCHEDULE_NOT_FOUND",
            )
        return (await self._with_misses([_schedule_from(row)], tenant))[0]

    async def list(self, *, tenant: str, page_size: int, page_token: str) -> Page[Schedule]:
        """A page of the tenant's schedules by id. A tenant has at most --max-schedules (100 by
        default), so they are read in one query and paged here."""
        size = clamp_page_size(page_size)
        after = decode_page_token(page_token, _PAGE_SCOPE, lambda key: key[0])
        schedules = sorted((_schedule_from(row) for row in await self._rows(tenant)), key=lambda s: s.id)
        rest = [s for s in schedules if after is None or s.id > after]
        page = rest[:size]
        token = encode_page_token(_PAGE_SCOPE, [page[-1].id]) if len(rest) > size else ""
        return Page(await self._with_misses(page, tenant), token)

    async def pause(self, schedule_id: str, *, tenant: str) -> Schedule:
        await self.get(schedule_id, tenant=tenant)
        await asyncio.to_thread(DBOS.pause_schedule, ids.scoped(tenant, schedule_id))
        return await self.get(schedule_id, tenant=tenant)

    async def resume(self, schedule_id: str, *, tenant: str) -> Schedule:
        await self.get(schedule_id, tenant=tenant)
        await asyncio.to_thread(DBOS.resume_schedule, ids.scoped(tenant, schedule_id))
        return await self.get(schedule_id, tenant=tenant)

    async def delete(self, schedule_id: str, *, tenant: str) -> None:
        await self.get(schedule_id, tenant=tenant)
        await DBOS.delete_schedule_async(ids.scoped(tenant, schedule_id))
        await self._store.forget_misses(tenant, schedule_id)
