"""The only module that uses private API of DBOS (dbos 3.4.0).

`tests/unit/test_dbos_internals.py` checks it against the installed DBOS, so that an upgrade
that changes it fails there first, not when a replica dies.
"""

from __future__ import annotations

from dbos import DBOS


def recover_pending_workflows(executor_ids: list[str]) -> None:
    """Recover the PENDING workflows of these (dead) executors in this process, as DBOS recovers
    a process's own when it launches. No public API finds and recovers another executor's
    workflows (`DBOS.resume_workflow` re-enqueues one workflow by id, resetting its recovery
    attempts, which is not recovery)."""
    DBOS._recover_pending_workflows(executor_ids)
