"""`timestep.durability.dbos_internals` against the installed DBOS: the private API it calls is
still there, taking what it passes. A failure here means DBOS changed: adapt the adapter (or
use the public API DBOS may now have). What it does is tested in `tests/durability/test_replicas.py`."""

from __future__ import annotations

import inspect

from dbos import DBOS


def test_dbos_recovers_the_pending_workflows_of_executors_named_by_id() -> None:
    recover = DBOS._recover_pending_workflows

    assert inspect.ismethod(recover), "a classmethod, called without an instance"
    assert recover.__self__ is DBOS
    assert list(inspect.signature(recover).parameters) == ["executor_ids"]
