"""`timestep.durability.dbos_internals` against the installed DBOS: the private API it calls is
still there, taking what it passes. A failure here means DBOS changed: adapt the adapter (or
use the public API DBOS may now have). What it does is tested in `tests/durability/test_replicas.py`."""

from __future__ import annotations

import inspect

from dbos import DBOS
from dbos._dbos import _get_or_create_dbos_registry
from dbos._queue import DEFAULT_QUEUE_POLLING_INTERVAL_SEC, queue_worker_thread
from timestep.durability.dbos_internals import poll_recovered_workflows_every


def test_dbos_recovers_the_pending_workflows_of_executors_named_by_id() -> None:
    recover = DBOS._recover_pending_workflows

    assert inspect.ismethod(recover), "a classmethod, called without an instance"
    assert recover.__self__ is DBOS
    assert list(inspect.signature(recover).parameters) == ["executor_ids"]


def test_the_internal_queue_dbos_recovers_onto_has_an_interval_its_worker_reads_at_each_poll() -> None:
    registry = _get_or_create_dbos_registry()
    queue = registry.get_internal_queue()

    assert queue is registry.get_internal_queue(), "one queue object, the one its worker polls"
    assert queue._polling_interval_sec == DEFAULT_QUEUE_POLLING_INTERVAL_SEC == 1.0
    worker = inspect.getsource(queue_worker_thread)
    assert "min_polling_interval = queue._polling_interval_sec" in worker, "read before each wait"


def test_polling_recovered_workflows_fast_is_undone_by_asking_for_the_default() -> None:
    queue = _get_or_create_dbos_registry().get_internal_queue()
    try:
        poll_recovered_workflows_every(0.05)
        assert queue._polling_interval_sec == 0.05
    finally:
        poll_recovered_workflows_every(None)
    assert queue._polling_interval_sec == DEFAULT_QUEUE_POLLING_INTERVAL_SEC
