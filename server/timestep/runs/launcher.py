"""How queued segments get executed: the seam between orchestration and durable execution.

The orchestrator only says "segment N of this run is queued" (`launch`) and "stop working on
it" (`stop`). `InProcessLauncher` runs segments as asyncio tasks of this process;
`timestep.durability.engine.DurableEngine` runs each as a DBOS workflow on a provider queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from timestep.runs.segments import SegmentExecutor
from timestep.runtime.steps import DirectSteps


class SegmentLauncher(Protocol):
    def queue_for(self, model_name: str) -> str:
        """The queue a segment of a run on `model_name` waits on ('' when there are none)."""
        ...

    async def launch(self, run_id: str, segment: int, queue_name: str) -> None:
        """Have segment `segment` of the run executed (idempotent per run and segment)."""
        ...

    async def stop(self, run_id: str, segment: int) -> None:
        """Stop executing that segment, if it is (its run was cancelled)."""
        ...

    async def queue_position(self, run_id: str, segment: int, queue_name: str) -> int:
        """How many segments wait ahead of that one on its queue."""
        ...

    async def forget(self, runs: Sequence[tuple[str, int]]) -> None:
        """Delete what was recorded of executing these runs' segments, each given as (run id,
        its segment count) (the runs are being deleted; none of their segments executes)."""
        ...


class InProcessLauncher:
    """Segments as tasks of this process: no queues, and a crash loses the running segments."""

    def __init__(self, executor: SegmentExecutor) -> None:
        self._executor = executor
        self._tasks: dict[tuple[str, int], asyncio.Task[None]] = {}

    def queue_for(self, model_name: str) -> str:
        return ""

    async def launch(self, run_id: str, segment: int, queue_name: str) -> None:
        key = (run_id, segment)
        if key in self._tasks:
            return
        task = asyncio.create_task(self._execute(run_id, segment), name=f"{run_id}/{segment}")
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._tasks.pop(key, None))

    async def _execute(self, run_id: str, segment: int) -> None:
        turn = await self._executor.execute(run_id, segment, DirectSteps())
        if turn is not None:  # the next run of the session
            await self.launch(turn.run_id, turn.segment, turn.queue_name)

    async def queue_position(self, run_id: str, segment: int, queue_name: str) -> int:
        return 0

    async def forget(self, runs: Sequence[tuple[str, int]]) -> None:
        return  # tasks record nothing

    async def stop(self, run_id: str, segment: int) -> None:
        task = self._tasks.get((run_id, segment))
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        """Stop executing anything, recording nothing (the process is shutting down)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
