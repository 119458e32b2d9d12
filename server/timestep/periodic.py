"""A coroutine repeated in the background every so often, until stopped: the shape of the
service's monitors (database probe, replica heartbeats, stranded-run sweeps)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class Periodic:
    """`round()` every `period_s` seconds in a task named `name`; the first round at once with
    `at_once`, else after one period. A round handles its own errors: one that raises ends it."""

    def __init__(
        self, name: str, period_s: float, round: Callable[[], Awaitable[None]], *, at_once: bool = False
    ) -> None:
        self._name = name
        self._period_s = period_s
        self._round = round
        self._at_once = at_once
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        if not self._at_once:
            await asyncio.sleep(self._period_s)  # the period, not a synchronisation
        while True:
            await self._round()
            await asyncio.sleep(self._period_s)
