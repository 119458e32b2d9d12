"""Replicas on one database: each heartbeats; a live one recovers a dead one's workflows.

DBOS recovers a process's own pending workflows when that process starts again. A replica
that never comes back would strand its segments, so every replica heartbeats into `replicas`,
and one whose heartbeat is older than the timeout is claimed (by one live replica, in a
transaction) and its pending workflows are recovered by the claimer. If the claimer dies too,
another live replica claims both.

The timeout is the claimer's: replicas may be started with different `--replica-timeout`s, so
each heartbeats at least every `MAX_HEARTBEAT_PERIOD_S` whatever its own timeout. Otherwise a
replica with a long timeout (slow heartbeats) would look dead to one with a short timeout while
alive, and the latter would run its segments a second time. For the same reason a replica
claims nobody until its own heartbeats have been succeeding for the timeout: after a database
outage every heartbeat is stale, live replicas' too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from timestep.durability.dbos_internals import recover_pending_workflows
from timestep.durability.replica_store import ReplicaStore
from timestep.outages import is_transient
from timestep.periodic import Periodic

log = logging.getLogger(__name__)

MAX_HEARTBEAT_PERIOD_S = 0.5


class ReplicaMonitor:
    def __init__(
        self, store: ReplicaStore, executor_id: str, timeout_s: float, recovering: Callable[[], None]
    ) -> None:
        self._store = store
        # Called before recovering a dead replica's workflows (to execute them at once).
        self._recovering = recovering
        self._executor_id = executor_id
        self._timeout_s = timeout_s
        self._period_s = min(timeout_s / 3, MAX_HEARTBEAT_PERIOD_S)
        self._beats = Periodic("timestep replica monitor", self._period_s, self._beat)
        self._database_away = False
        # Since when this replica's heartbeats have been succeeding (None: the last one failed).
        self._heartbeating_since: float | None = time.monotonic()

    async def start(self) -> None:
        await self._store.heartbeat(self._executor_id)
        self._beats.start()

    async def stop(self) -> None:
        await self._beats.stop()

    async def _beat(self) -> None:
        try:
            await self._store.heartbeat(self._executor_id)
            self._database_away = False
            if self._heartbeating_since is None:
                self._heartbeating_since = time.monotonic()
            if time.monotonic() - self._heartbeating_since < self._timeout_s:
                # After a database outage every replica's heartbeat is stale: live ones are
                # told from dead ones only once they have had the timeout to heartbeat again.
                return
            for dead in await self._store.claim_dead_replicas(self._executor_id, self._timeout_s):
                log.warning("replica %s stopped heartbeating; recovering its workflows", dead)
                self._recovering()
                await asyncio.to_thread(recover_pending_workflows, [dead])
        except Exception as error:
            self._heartbeating_since = None
            if not is_transient(error):
                log.exception("replica monitor round failed; trying again next round")
            elif not self._database_away:  # once per outage, not every round of it
                log.warning("replica monitor: the database is unreachable (%s); retrying", error)
            self._database_away = is_transient(error)
