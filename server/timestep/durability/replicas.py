"""Replicas on one database: each heartbeats; a live one recovers a dead one's workflows.

DBOS recovers a process's own pending workflows when that process starts again. A replica
that never comes back would strand its segments, so every replica heartbeats into `replicas`,
and one whose heartbeat is older than the timeout is claimed (by one live replica, in a
transaction) and its pending workflows are recovered by the claimer. If the claimer dies too,
another live replica claims both.

The timeout is the claimer's: replicas may be started with different `--replica-timeout`s, so
each heartbeats at least every `MAX_HEARTBEAT_PERIOD_S` whatever its own timeout. Otherwise a
replica with a long timeout (slow heartbeats) would look dead to one with a short timeout while
alive, and the latter would run its segments a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from timestep.durability.dbos_internals import recover_pending_workflows
from timestep.store.runs import RunStore

log = logging.getLogger(__name__)

MAX_HEARTBEAT_PERIOD_S = 0.5


class ReplicaMonitor:
    def __init__(self, store: RunStore, executor_id: str, timeout_s: float) -> None:
        self._store = store
        self._executor_id = executor_id
        self._timeout_s = timeout_s
        self._period_s = min(timeout_s / 3, MAX_HEARTBEAT_PERIOD_S)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._store.heartbeat(self._executor_id)
        self._task = asyncio.create_task(self._run(), name="timestep replica monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._period_s)  # the heartbeat period, not a synchronisation
            try:
                await self._store.heartbeat(self._executor_id)
                for dead in await self._store.claim_dead_replicas(self._executor_id, self._timeout_s):
                    log.warning("replica %s stopped heartbeating; recovering its workflows", dead)
                    await asyncio.to_thread(recover_pending_workflows, [dead])
            except Exception:
                log.exception("replica monitor round failed; trying again next round")
