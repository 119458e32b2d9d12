"""The only module that uses private API of DBOS (dbos 3.4.0).

`tests/unit/test_dbos_internals.py` checks it against the installed DBOS, so that an upgrade
that changes it fails there first, not when a replica dies.
"""

from __future__ import annotations

from dbos import DBOS
from dbos._dbos import _get_or_create_dbos_registry
from dbos._queue import DEFAULT_QUEUE_POLLING_INTERVAL_SEC


def recover_pending_workflows(executor_ids: list[str]) -> None:
    """Recover the PENDING workflows of these (dead) executors in this process, as DBOS recovers
    a process's own when it launches. No public API finds and recovers another executor's
    workflows (`DBOS.resume_workflow` re-enqueues one workflow by id, resetting its recovery
    attempts, which is not recovery)."""
    DBOS._recover_pending_workflows(executor_ids)


def poll_recovered_workflows_every(interval_s: float | None) -> None:
    """How often this process looks for recovered workflows to execute; None: DBOS's default
    (a second), which its public settings cannot change.

    DBOS recovers a workflow (a process's own at launch, a dead executor's above) by putting it
    back on its internal queue, which a thread of this process polls. That thread reads the
    queue's interval before each wait, so a change applies from its next poll on."""
    queue = _get_or_create_dbos_registry().get_internal_queue()
    queue._polling_interval_sec = DEFAULT_QUEUE_POLLING_INTERVAL_SEC if interval_s is None else interval_s
