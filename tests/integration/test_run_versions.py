"""Transitions as compare-and-set on the run's version: a decision made on a run that moved on
writes nothing and is made again on the run as it is; the run a transition returns (derived,
not read back) is the run as stored."""

from __future__ import annotations

import asyncpg
from timestep.domain import InterruptionStatus, Run, RunError, RunStatus
from timestep.runs import apply
from timestep.runs.apply import RunTransitions
from timestep.runs.transitions import Keep, Refusal
from timestep.scope import Scope
from timestep.store.runs import RunStore

from tests.integration.test_run_store import interrupted_outcome, new_run, stored_state

CANCELLED = RunError("CANCELLED", "Cancelled by the test.")


async def same_as_stored(store: RunStore, run: Run) -> None:
    assert run == await store.get_run(Scope.ALL, run.id)


async def test_a_change_decided_on_a_run_that_moved_on_writes_nothing(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    created, _, _ = await store.create_run(new_run())
    stale = await store.get_run(Scope.ALL, created.id)
    begun, _ = await RunTransitions(store).begin_segment(created.id, 1)
    assert begun is not None
    assert begun.version == stale.version + 1
    before = await stored_state(pool, created.id)

    decision = apply.cancel(CANCELLED)(stale)
    assert not isinstance(decision, Refusal)
    assert not isinstance(decision, Keep)
    assert await store.apply(decision) is None

    assert await stored_state(pool, created.id) == before


async def test_a_transition_that_lost_a_race_is_decided_again_on_the_run_as_it_is(store: RunStore) -> None:
    created, _, _ = await store.create_run(new_run())
    stale = await store.get_run(Scope.ALL, created.id)
    await RunTransitions(store).begin_segment(created.id, 1)  # QUEUED -> RUNNING meanwhile

    # Beginning the segment again, decided on the QUEUED run, loses the race; decided again on
    # the RUNNING run it is a repeat and writes nothing.
    again, events = await RunTransitions(store).begin_segment(created.id, 1, run=stale)
    assert again is not None
    assert again.status is RunStatus.RUNNING
    assert events == []
    # Cancelling, decided on the QUEUED run, is decided again and cancels the RUNNING one.
    applied = await RunTransitions(store).apply(Scope.ALL, created.id, apply.cancel(CANCELLED), run=stale)
    assert not isinstance(applied, Refusal)
    cancelled, events = applied
    assert cancelled.status is RunStatus.CANCELLED
    assert [e.payload["status"] for e in events] == ["cancelled"]
    await same_as_stored(store, cancelled)


async def test_the_run_each_transition_returns_is_the_run_as_stored(store: RunStore) -> None:
    transitions = RunTransitions(store)
    created, _, _ = await store.create_run(new_run())
    await same_as_stored(store, created)
    begun, _ = await transitions.begin_segment(created.id, 1)
    assert begun is not None
    await same_as_stored(store, begun)
    paused, _ = await transitions.finish_segment(
        created.id, 1, interrupted_outcome("call_1", "call_2"), run=begun
    )
    await same_as_stored(store, paused)
    for pending in paused.interruptions:
        recorded, _ = await transitions.decide_interruption(
            Scope.ALL, paused.id, pending.id, InterruptionStatus.REJECTED, always=True, message="No 🙅\x00"
        )
        stored = await store.get_run(Scope.ALL, paused.id)
        assert recorded == next(i for i in stored.interruptions if i.id == pending.id)
    decided = await store.get_run(Scope.ALL, paused.id)
    assert [i.status for i in decided.interruptions] == [InterruptionStatus.REJECTED] * 2
    resumed, _ = await transitions.queue_resume(Scope.ALL, paused.id, "queue-a", run=decided)
    await same_as_stored(store, resumed)
    assert (resumed.status, resumed.segment_count, resumed.queue_name) == (RunStatus.QUEUED, 2, "queue-a")
    cancelled, _ = await transitions.cancel_run(Scope.ALL, paused.id, CANCELLED)
    await same_as_stored(store, cancelled)
    assert cancelled.version == resumed.version + 1
