"""What the API needs of schedules. The durable engine implements it (`timestep.durability`);
without durability there are no schedules and every call says so."""

from __future__ import annotations

from typing import Protocol

from timestep.domain import Schedule, ScheduleSpec
from timestep.errors import FailedPreconditionError


class Schedules(Protocol):
    async def create(self, schedule_id: str, spec: ScheduleSpec) -> Schedule: ...

    async def get(self, schedule_id: str) -> Schedule: ...

    async def list(self) -> list[Schedule]: ...

    async def pause(self, schedule_id: str) -> Schedule: ...

    async def resume(self, schedule_id: str) -> Schedule: ...

    async def delete(self, schedule_id: str) -> None: ...


class NoSchedules:
    """Schedules of a service started without durability."""

    def _refuse(self) -> FailedPreconditionError:
        return FailedPreconditionError(
            "Schedules need durable mode; restart the service without --no-durability.",
            reason="SCHEDULES_NEED_DURABILITY",
        )

    async def create(self, schedule_id: str, spec: ScheduleSpec) -> Schedule:
        raise self._refuse()

    async def get(self, schedule_id: str) -> Schedule:
        raise self._refuse()

    async def list(self) -> list[Schedule]:
        raise self._refuse()

    async def pause(self, schedule_id: str) -> Schedule:
        raise self._refuse()

    async def resume(self, schedule_id: str) -> Schedule:
        raise self._refuse()

    async def delete(self, schedule_id: str) -> None:
        raise self._refuse()
