"""No run stays QUEUED or RUNNING without a workflow executing it.

DBOS recovers PENDING workflows (of a restarted replica, or of a dead one through
`ReplicaMonitor`), not ones that ended: a segment workflow that ended in error (the database
stayed away longer than the store waits for it, a bug), was cancelled without its run being
cancelled, or was never started (its launcher died between queueing the run and launching it)
leaves its run stranded. Every replica sweeps for such runs every `grace / 2` seconds; a run
stranded for longer than the grace is claimed by one replica (`ReplicaStore.claim_stranded`) and
its segment started again under the same workflow id: the ended workflow's record is deleted
and the segment launched anew, so it replays its step journal (completed calls are not made
again). A segment recovered `MAX_RECOVERIES` times that is stranded once more is FAILED with
the error code `recovery_failed`, never left as it is.
"""

from __future__ import annotations

import logging
from typing import Final

from dbos import DBOS

from timestep.domain import RunError, RunErrorCode
from timestep.durability.replica_store import ReplicaStore, StrandedSegment
from timestep.durability.workflows import segment_workflow_id
from timestep.periodic import Periodic
from timestep.runs.apply import RunTransitions
from timestep.runs.events import EventBus
from timestep.runs.launcher import SegmentLauncher
from timestep.store.runs import RunStore

log = logging.getLogger(__name__)

MAX_RECOVERIES: Final = 3


class StrandedSweeper:
    def __init__(
        self,
        store: RunStore,
        replicas: ReplicaStore,
        bus: EventBus,
        launcher: SegmentLauncher,
        grace_s: float,
    ) -> None:
        self._store = store
        self._replicas = replicas
        self._bus = bus
        self._launcher = launcher
        self._grace_s = grace_s
        self._sweeps = Periodic("timestep stranded-run sweeper", grace_s / 2, self._sweep_round)

    def start(self) -> None:
        self._sweeps.start()

    async def stop(self) -> None:
        await self._sweeps.stop()

    async def _sweep_round(self) -> None:
        try:
            await self.sweep()
        except Exception as error:  # the database may be away: next round
            log.warning("sweeping for stranded runs failed (%s); trying again next round", error)

    async def sweep(self) -> None:
        """Recover (or fail) the runs stranded for longer than the grace period."""
        for stranded in await self._replicas.claim_stranded(self._grace_s):
            if stranded.attempts > MAX_RECOVERIES:
                await self._fail(stranded)
            else:
                await self._recover(stranded)

    async def _recover(self, stranded: StrandedSegment) -> None:
        workflow_id = segment_workflow_id(stranded.run_id, stranded.segment)
        log.warning(
            "run %s segment %s has no live workflow (%s); starting it again (recovery %s of %s)",
            stranded.run_id,
            stranded.segment,
            stranded.workflow_status or "never started",
            stranded.attempts,
            MAX_RECOVERIES,
        )
        if stranded.workflow_status is not None:
            # A workflow id is started once: the ended one's record makes way for the new start.
            await DBOS.delete_workflow_async(workflow_id)
        await self._launcher.launch(stranded.run_id, stranded.segment, stranded.queue_name)

    async def _fail(self, stranded: StrandedSegment) -> None:
        ended = stranded.workflow_status or "unstarted"
        error = RunError(
            RunErrorCode.RECOVERY_FAILED,
            f"Segment {stranded.segment} of this run stopped without finishing it {stranded.attempts} "
            f"times (its last execution ended {ended}); the service gave up on it. The service's logs "
            "for this run id say why; create the run again.",
        )
        failed = await RunTransitions(self._store).fail_stranded(stranded.run_id, stranded.segment, error)
        if failed is not None:
            log.error("run %s failed: %s", stranded.run_id, error.message)
            self._bus.publish(failed[1])
            turn = await self._store.next_turn(failed[0].tenant, failed[0].session_id)
            if turn is not None:  # the next run of its session
                await self._launcher.launch(turn.run_id, turn.segment, turn.queue_name)
