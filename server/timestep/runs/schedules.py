"""What the API needs of schedules. The durable engine implements it (`timestep.durability`);
without durability there are no schedules and every call says so.

Schedules belong to a tenant like runs do: each call names the caller's, and another tenant's
schedule is NOT_FOUND."""

from __future__ import annotations

from typing import Protocol

from timestep.domain import Page, Schedule, ScheduleSpec
from timestep.errors import FailedPreconditionError


class Schedules(Protocol):
    async def create(self, schedule_id: str, spec: ScheduleSpec, *, tenant: str) -> Schedule: ...

    async def get(self, schedule_id: str, *, tenant: str) -> Schedule: ...

    async def list(self, *, tenant: str, page_size: int, page_token: str) -> Page[Schedule]: ...

    async def pause(self, schedule_id: str, *, tenant: str) -> Schedule: ...

    async def resume(self, schedule_id: str, *, tenant: str) -> Schedule: ...

    async def delete(self, schedule_id: str, *, tenant: str) -> None: ...


class NoSchedules:
    """Schedules of a service started without durability."""

    def _refuse(self) -> FailedPreconditionError:
        return FailedPreconditionError(
            "Schedules need durable mode; restart the service without --no-durability.",
            reason="SCHEDULES_NEED_DURABILITY",
            subject="timestep.v1.ScheduleService",
        )

    async def create(self, schedule_id: str, spec: ScheduleSpec, *, tenant: str) -> Schedule:
        raise self._refuse()

    async def get(self, schedule_id: str, *, tenant: str) -> Schedule:
        raise self._refuse()

    async def list(self, *, tenant: str, page_size: int, page_token: str) -> Page[Schedule]:
        raise self._refuse()

    async def pause(self, schedule_id: str, *, tenant: str) -> Schedule:
        raise self._refuse()

    async def resume(self, schedule_id: str, *, tenant: str) -> Schedule:
        raise self._refuse()

    async def delete(self, schedule_id: str, *, tenant: str) -> None:
        raise self._refuse()
