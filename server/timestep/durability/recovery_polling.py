"""Executing recovered workflows at once rather than at DBOS's next poll, up to a second later.

DBOS recovers a workflow by putting it on its internal queue, which is polled every second. A
segment started without a queue (the default) and cut off by a crash therefore resumed up to a
second after recovery: after `kill -9` and a restart, about 1.2 s after the service served.

After each recovery (this process's own at launch, a dead replica's later) the internal queue is
polled every `FAST_INTERVAL_S` for `WINDOW_S`, then every second again: an idle replica does not
poll fast. The dequeue itself is DBOS's, so a recovered workflow still executes once: the queue
hands it to one claimant, in a transaction.
"""

from __future__ import annotations

import asyncio

from timestep.durability.dbos_internals import poll_recovered_workflows_every

FAST_INTERVAL_S = 0.05
# Long enough for DBOS to re-enqueue what it recovers: at launch it does so on a thread of its own.
WINDOW_S = 5.0


class RecoveryPolling:
    def __init__(self) -> None:
        self._window: asyncio.TimerHandle | None = None

    def recovering(self) -> None:
        """Poll fast from now on for `WINDOW_S` (longer if a window is open already)."""
        if self._window is not None:
            self._window.cancel()
        poll_recovered_workflows_every(FAST_INTERVAL_S)
        self._window = asyncio.get_running_loop().call_later(WINDOW_S, self.close)

    def close(self) -> None:
        """Back to DBOS's interval."""
        if self._window is not None:
            self._window.cancel()
            self._window = None
        poll_recovered_workflows_every(None)
