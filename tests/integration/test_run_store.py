"""RunStore against the real PostgreSQL of this test run.

The database is shared by every test of the run, so each test works on its own runs (unique
agent names, session ids and request ids) and never assumes a table is empty.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
import pytest
from timestep.changes import SegmentOutcome
from timestep.domain import (
    EventKind,
    InterruptionStatus,
    ModelCall,
    NewInterruption,
    NewRun,
    PendingEvent,
    Run,
    RunError,
    RunFilter,
    RunStatus,
    Snapshot,
    Usage,
)
from timestep.durability.journal_store import JournalStore
from timestep.durability.replica_store import ReplicaStore
from timestep.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from timestep.runs.apply import RunTransitions
from timestep.scope import Scope
from timestep.store.database import open_pool
from timestep.store.events import EVENTS_CHANNEL
from timestep.store.runs import RunStore

SNAPSHOT = Snapshot(
    writer="python",
    schema_version="1.0",
    state_json='{"$schemaVersion": "1.0", "current_turn": 1, "original_input": "hi"}',
)


class RejectStatusEvents(Protocol):
    async def __call__(self, agent: str, status: RunStatus, *, at_commit: bool = False) -> None: ...


WAIT = 10.0  # an upper bound so a bug fails the test instead of hanging it; never a sleep


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def new_run(agent: str | None = None, **overrides: Any) -> NewRun:
    fields: dict[str, Any] = {
        "agent": agent or unique("agent"),
        "input": "Hello",
        "session_id": unique("session"),
        "model": "gpt-fake",
        "metadata": {"purpose": "test"},
    }
    fields.update(overrides)
    return NewRun(**fields)


def interruption(call_id: str, tool_name: str = "send_email") -> NewInterruption:
    return NewInterruption(
        agent="assistant", tool_name=tool_name, call_id=call_id, arguments_json='{"to": "bob@example.com"}'
    )


def interrupted_outcome(*call_ids: str) -> SegmentOutcome:
    return SegmentOutcome(
        status=RunStatus.INTERRUPTED,
        current_agent="assistant",
        usage=Usage(1, 10, 5, 15),
        snapshot=SNAPSHOT,
        interruptions=[interruption(call_id) for call_id in call_ids],
    )


async def running_run(store: RunStore, agent: str | None = None) -> Run:
    """A run whose first segment has begun (events 1 queued and 2 running)."""
    run, _, _ = await store.create_run(new_run(agent))
    running, _ = await RunTransitions(store).begin_segment(run.id, 1)
    assert running is not None
    assert running.status is RunStatus.RUNNING
    return running


async def interrupted_run(store: RunStore, *call_ids: str, agent: str | None = None) -> Run:
    run = await running_run(store, agent)
    finished, _ = await RunTransitions(store).finish_segment(run.id, 1, interrupted_outcome(*call_ids))
    assert finished.status is RunStatus.INTERRUPTED
    return finished


async def stored_state(pool: asyncpg.Pool, run_id: str) -> dict[str, Any]:
    """Everything stored about a run: its row and all its dependent rows."""
    run = await pool.fetchrow("SELECT * FROM runs WHERE id = $1", run_id)
    assert run is not None
    state: dict[str, Any] = {"run": dict(run)}
    for table, order in (
        ("run_events", "sequence"),
        ("interruptions", "id"),
        ("run_state_snapshots", "segment"),
        ("run_usage", "segment"),
        ("model_calls", "segment, ordinal"),
        ("tool_invocations", "segment, call_id"),
    ):
        rows = await pool.fetch(f"SELECT * FROM {table} WHERE run_id = $1 ORDER BY {order}", run_id)
        state[table] = [dict(row) for row in rows]
    return state


@pytest.fixture
async def reject_status_events(pool: asyncpg.Pool) -> AsyncIterator[RejectStatusEvents]:
    """Make PostgreSQL itself reject the `status_changed` event to `status` of one agent's runs.

    A real trigger on run_events (dropped after the test), scoped to an agent name no other
    test uses, so a store method can be made to fail half-way through its transaction, or
    (`at_commit`, a deferred constraint trigger) only when it commits, after all its statements.
    """
    installed: list[str] = []

    async def install(agent: str, status: RunStatus, *, at_commit: bool = False) -> None:
        name = unique("timestep_test_reject")
        await pool.execute(
            f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.kind = 'status_changed' AND NEW.payload->>'status' = '{status.value}'
                       AND EXISTS (SELECT 1 FROM runs WHERE id = NEW.run_id AND agent = '{agent}') THEN
                        RAISE EXCEPTION 'test trigger rejects this event';
                    END IF;
                    RETURN NEW;
                END $$"""
        )
        installed.append(name)
        timing = "CONSTRAINT TRIGGER {} AFTER" if at_commit else "TRIGGER {} BEFORE"
        deferred = "DEFERRABLE INITIALLY DEFERRED" if at_commit else ""
        await pool.execute(
            f"""CREATE {timing.format(name)} INSERT ON run_events {deferred}
                FOR EACH ROW EXECUTE FUNCTION {name}()"""
        )

    try:
        yield install
    finally:
        for name in installed:
            await pool.execute(f"DROP TRIGGER IF EXISTS {name} ON run_events")
            await pool.execute(f"DROP FUNCTION IF EXISTS {name}()")


# ----- create_run ---------------------------------------------------------------------------


async def test_create_run_writes_queued_run_and_its_status_event(store: RunStore, pool: asyncpg.Pool) -> None:
    request = new_run(input=[{"role": "user", "content": "Hi"}], request_id=unique("req"))

    run, events, created = await store.create_run(request)

    assert created is True
    assert run.status is RunStatus.QUEUED
    assert (run.agent, run.current_agent, run.session_id, run.model) == (
        request.agent,
        request.agent,
        request.session_id,
        "gpt-fake",
    )
    assert run.metadata == {"purpose": "test"}
    assert run.request_id == request.request_id
    # The first segment is reserved at creation: the run is QUEUED for segment 1.
    assert (run.segment_count, run.last_sequence, run.usage) == (1, 1, Usage())
    assert run.queue_name == ""
    assert [(e.sequence, e.segment, e.kind, e.payload) for e in events] == [
        (1, 1, EventKind.STATUS_CHANGED, {"status": "queued", "reason": ""})
    ]
    assert await store.events.list_events(run.id, 0) == events
    assert await store.get_run(Scope.ALL, run.id) == run
    assert (await store.segment_start(run.id, 1))[1] == [{"role": "user", "content": "Hi"}]
    assert (run.id, 1, "") in await store.queued_segments()


async def test_create_run_records_its_queue(store: RunStore) -> None:
    run, _, _ = await store.create_run(new_run(), queue_name="openai")

    assert run.queue_name == "openai"
    assert (await store.get_run(Scope.ALL, run.id)).queue_name == "openai"
    assert (run.id, 1, "openai") in await store.queued_segments()


async def test_create_run_is_atomic_when_its_status_event_fails(
    store: RunStore, pool: asyncpg.Pool, reject_status_events: RejectStatusEvents
) -> None:
    agent = unique("atomic")
    await reject_status_events(agent, RunStatus.QUEUED)

    with pytest.raises(asyncpg.RaiseError, match="test trigger rejects"):
        await store.create_run(new_run(agent, request_id=unique("req")))

    assert await pool.fetchval("SELECT count(*) FROM runs WHERE agent = $1", agent) == 0


async def test_create_run_with_same_request_id_returns_the_same_run(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    request = new_run(request_id=unique("req"))

    first, first_events, first_created = await store.create_run(request)
    again, again_events, again_created = await store.create_run(request)

    assert (first_created, again_created) == (True, False)
    assert again.id == first.id
    assert len(first_events) == 1
    assert again_events == []
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE request_id = $1", request.request_id) == 1
    assert [e.sequence for e in await store.events.list_events(first.id, 0)] == [1]


async def test_concurrent_creates_with_one_request_id_make_one_run(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    request = new_run(request_id=unique("req"))

    results = await asyncio.gather(*(store.create_run(request) for _ in range(10)))

    assert len({run.id for run, _, _ in results}) == 1
    assert sum(created for _, _, created in results) == 1
    assert sum(len(events) for _, events, _ in results) == 1
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE request_id = $1", request.request_id) == 1
    run_id = results[0][0].id
    assert [e.sequence for e in await store.events.list_events(run_id, 0)] == [1]


async def test_reusing_a_request_id_with_other_arguments_is_rejected(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    request = new_run(request_id=unique("req"))
    original, _, _ = await store.create_run(request)
    before = await stored_state(pool, original.id)

    with pytest.raises(AlreadyExistsError) as raised:
        await store.create_run(new_run(request.agent, request_id=request.request_id, input="Something else"))

    assert raised.value.reason == "REQUEST_ID_REUSED"
    assert original.id in raised.value.message
    assert await stored_state(pool, original.id) == before
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE request_id = $1", request.request_id) == 1


async def test_runs_without_request_id_are_never_deduplicated(store: RunStore) -> None:
    request = new_run()

    first, _, first_created = await store.create_run(request)
    second, _, second_created = await store.create_run(request)

    assert first_created
    assert second_created
    assert first.id != second.id
    assert first.request_id == second.request_id == ""


# ----- segments -------------------------------------------------------------------------------


async def test_segment_that_completes(store: RunStore, pool: asyncpg.Pool) -> None:
    run, _, _ = await store.create_run(new_run(), queue_name="openai")

    running, begin_events = await RunTransitions(store).begin_segment(run.id, 1)

    assert running is not None
    assert running.status is RunStatus.RUNNING
    assert running.segment_count == 1
    assert running.queue_name == ""  # it no longer waits on a queue
    assert [(e.sequence, e.segment, e.kind, e.payload) for e in begin_events] == [
        (2, 1, EventKind.STATUS_CHANGED, {"status": "running", "reason": ""})
    ]
    assert run.id not in {run_id for run_id, _, _ in await store.queued_segments()}

    outcome = SegmentOutcome(
        status=RunStatus.COMPLETED,
        current_agent="billing",
        usage=Usage(2, 20, 7, 27),
        final_output="All done.",
        events=[PendingEvent(EventKind.FINAL_OUTPUT, {"agent": "billing", "output": "All done."})],
    )
    finished, finish_events = await RunTransitions(store).finish_segment(run.id, 1, outcome)

    assert finished.status is RunStatus.COMPLETED
    assert (finished.current_agent, finished.final_output, finished.error) == ("billing", "All done.", None)
    assert finished.usage == Usage(2, 20, 7, 27)
    assert finished.last_sequence == 5
    assert [(e.sequence, e.segment, e.kind) for e in finish_events] == [
        (3, 1, EventKind.FINAL_OUTPUT),
        (4, 1, EventKind.USAGE),
        (5, 1, EventKind.STATUS_CHANGED),
    ]
    assert finish_events[1].payload == {
        "segment": Usage(2, 20, 7, 27).to_dict(),
        "total": Usage(2, 20, 7, 27).to_dict(),
        "calls": [],
    }
    assert finish_events[2].payload == {"status": "completed", "reason": ""}
    assert finish_events[2].stopped_status is RunStatus.COMPLETED
    usage_rows = await pool.fetch("SELECT * FROM run_usage WHERE run_id = $1", run.id)
    assert [(r["segment"], r["requests"], r["total_tokens"]) for r in usage_rows] == [(1, 2, 27)]
    assert await store.latest_snapshot(run.id) is None

    # A finished run neither begins its segment again (a replay) nor resumes.
    done = await stored_state(pool, run.id)
    assert await RunTransitions(store).begin_segment(run.id, 1) == (None, [])
    with pytest.raises(FailedPreconditionError) as raised:
        await RunTransitions(store).queue_resume(Scope.ALL, run.id)
    assert raised.value.reason == "RUN_NOT_RESUMABLE"
    assert await stored_state(pool, run.id) == done


async def test_segment_that_fails_records_the_error(store: RunStore) -> None:
    run = await running_run(store)
    error = RunError("MODEL_ERROR", "The model answered 500.")

    failed, events = await RunTransitions(store).finish_segment(
        run.id,
        1,
        SegmentOutcome(
            status=RunStatus.FAILED,
            current_agent=run.agent,
            usage=Usage(1, 10, 0, 10),
            error=error,
            events=[PendingEvent(EventKind.ERROR, {"code": error.code, "message": error.message})],
        ),
    )

    assert failed.status is RunStatus.FAILED
    assert failed.error == error
    assert [e.kind for e in events] == [EventKind.ERROR, EventKind.USAGE, EventKind.STATUS_CHANGED]
    assert events[-1].payload == {"status": "failed", "reason": error.message}
    assert await RunTransitions(store).begin_segment(run.id, 1) == (None, [])


async def test_beginning_a_running_segment_again_changes_nothing(store: RunStore, pool: asyncpg.Pool) -> None:
    run, _, _ = await store.create_run(new_run())
    first, first_events = await RunTransitions(store).begin_segment(run.id, 1)
    assert first is not None
    assert [e.payload["status"] for e in first_events] == ["running"]
    before = await stored_state(pool, run.id)

    # Recovery replays the segment's workflow from the start: beginning it again is a no-op.
    again, again_events = await RunTransitions(store).begin_segment(run.id, 1)

    assert again == first
    assert again_events == []
    assert await stored_state(pool, run.id) == before


async def test_concurrent_begins_of_one_segment_write_one_status_event(store: RunStore) -> None:
    run, _, _ = await store.create_run(new_run())

    results = await asyncio.gather(*(RunTransitions(store).begin_segment(run.id, 1) for _ in range(8)))

    assert all(began is not None and began.status is RunStatus.RUNNING for began, _ in results)
    assert sorted(len(events) for _, events in results) == [0] * 7 + [1]
    stored = await store.events.list_events(run.id, 0)
    assert [(e.sequence, e.payload["status"]) for e in stored] == [(1, "queued"), (2, "running")]


async def test_a_segment_the_run_is_not_queued_for_does_not_begin(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    run, _, _ = await store.create_run(new_run(), queue_name="openai")
    before = await stored_state(pool, run.id)

    for wrong_segment in (0, 2):
        assert await RunTransitions(store).begin_segment(run.id, wrong_segment) == (None, [])

    assert await stored_state(pool, run.id) == before
    running, _ = await RunTransitions(store).begin_segment(run.id, 1)
    assert running is not None
    assert running.status is RunStatus.RUNNING
    # Once running, another segment still does not begin (nor does the run change).
    during = await stored_state(pool, run.id)
    assert await RunTransitions(store).begin_segment(run.id, 2) == (None, [])
    assert await stored_state(pool, run.id) == during


async def test_a_queued_or_running_run_cannot_be_resumed(store: RunStore, pool: asyncpg.Pool) -> None:
    queued, _, _ = await store.create_run(new_run())
    running = await running_run(store)

    for run_id, status in ((queued.id, RunStatus.QUEUED), (running.id, RunStatus.RUNNING)):
        before = await stored_state(pool, run_id)
        with pytest.raises(FailedPreconditionError) as raised:
            await RunTransitions(store).queue_resume(Scope.ALL, run_id)
        assert raised.value.reason == "RUN_NOT_RESUMABLE"
        assert await stored_state(pool, run_id) == before
        assert (await store.get_run(Scope.ALL, run_id)).status is status


async def test_interrupted_run_resumes_after_every_interruption_is_decided(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    run = await running_run(store)

    paused, events = await RunTransitions(store).finish_segment(
        run.id, 1, interrupted_outcome("call_a", "call_b")
    )

    assert paused.status is RunStatus.INTERRUPTED
    assert [i.call_id for i in paused.pending_interruptions] == ["call_a", "call_b"]
    assert all(i.segment == 1 and i.status is InterruptionStatus.PENDING for i in paused.interruptions)
    assert [e.kind for e in events] == [
        EventKind.INTERRUPTION,
        EventKind.INTERRUPTION,
        EventKind.USAGE,
        EventKind.STATUS_CHANGED,
    ]
    assert [e.payload["id"] for e in events[:2]] == [i.id for i in paused.interruptions]
    assert events[-1].stopped_status is RunStatus.INTERRUPTED
    assert await store.latest_snapshot(run.id) == SNAPSHOT

    with pytest.raises(FailedPreconditionError) as raised:
        await RunTransitions(store).queue_resume(Scope.ALL, run.id)
    assert raised.value.reason == "INTERRUPTIONS_PENDING"
    # Neither the finished segment nor the next one begins without a resume.
    assert await RunTransitions(store).begin_segment(run.id, 1) == (None, [])
    assert await RunTransitions(store).begin_segment(run.id, 2) == (None, [])

    first, second = paused.interruptions
    await RunTransitions(store).decide_interruption(
        Scope.ALL, run.id, first.id, InterruptionStatus.APPROVED, always=False, message=""
    )
    with pytest.raises(FailedPreconditionError) as raised:
        await RunTransitions(store).queue_resume(Scope.ALL, run.id)  # one is still pending
    assert raised.value.reason == "INTERRUPTIONS_PENDING"
    await RunTransitions(store).decide_interruption(
        Scope.ALL, run.id, second.id, InterruptionStatus.REJECTED, always=True, message="No."
    )
    assert (
        await store.get_run(Scope.ALL, run.id)
    ).status is RunStatus.INTERRUPTED  # deciding does not resume

    queued, queue_events = await RunTransitions(store).queue_resume(Scope.ALL, run.id, "openai")
    assert queued.status is RunStatus.QUEUED
    assert (queued.segment_count, queued.queue_name) == (2, "openai")
    assert queued.pending_interruptions == []
    assert [(e.segment, e.kind, e.payload) for e in queue_events] == [
        (2, EventKind.STATUS_CHANGED, {"status": "queued", "reason": ""})
    ]
    assert (run.id, 2, "openai") in await store.queued_segments()
    with pytest.raises(FailedPreconditionError) as raised:
        await RunTransitions(store).queue_resume(Scope.ALL, run.id)  # a second resume must not skip a segment
    assert raised.value.reason == "RUN_NOT_RESUMABLE"
    assert await RunTransitions(store).begin_segment(run.id, 1) == (
        None,
        [],
    )  # a late replay of the old segment

    resumed, resume_events = await RunTransitions(store).begin_segment(run.id, 2)
    assert resumed is not None
    assert resumed.status is RunStatus.RUNNING
    assert (resumed.segment_count, resumed.queue_name) == (2, "")
    assert resumed.pending_interruptions == []
    assert [(e.segment, e.payload["status"]) for e in resume_events] == [(2, "running")]

    done, _ = await RunTransitions(store).finish_segment(
        run.id,
        2,
        SegmentOutcome(status=RunStatus.COMPLETED, current_agent="assistant", usage=Usage(1, 10, 3, 13)),
    )
    assert done.status is RunStatus.COMPLETED
    assert done.usage == Usage(2, 20, 8, 28)  # both segments
    usage_rows = await pool.fetch(
        "SELECT segment, total_tokens FROM run_usage WHERE run_id = $1 ORDER BY segment", run.id
    )
    assert [tuple(r) for r in usage_rows] == [(1, 15), (2, 13)]
    stored = await store.events.list_events(run.id, 0)
    assert [e.sequence for e in stored] == list(range(1, done.last_sequence + 1))
    assert [(e.segment, e.payload["status"]) for e in stored if e.kind is EventKind.STATUS_CHANGED] == [
        (1, "queued"),
        (1, "running"),
        (1, "interrupted"),
        (2, "queued"),
        (2, "running"),
        (2, "completed"),
    ]


async def test_deciding_an_interruption_twice(store: RunStore) -> None:
    run = await interrupted_run(store, "call_1")
    pending = run.interruptions[0]

    decided, events = await RunTransitions(store).decide_interruption(
        Scope.ALL, run.id, pending.id, InterruptionStatus.APPROVED, always=True, message=""
    )
    assert decided.status is InterruptionStatus.APPROVED
    assert decided.always is True
    assert decided.decide_time is not None
    assert [(e.kind, e.payload["status"], e.payload["id"]) for e in events] == [
        (EventKind.INTERRUPTION_DECIDED, "approved", pending.id)
    ]
    last_sequence = (await store.get_run(Scope.ALL, run.id)).last_sequence

    same, same_events = await RunTransitions(store).decide_interruption(
        Scope.ALL, run.id, pending.id, InterruptionStatus.APPROVED, always=True, message=""
    )
    assert same_events == []
    assert same == decided
    assert (await store.get_run(Scope.ALL, run.id)).last_sequence == last_sequence

    with pytest.raises(FailedPreconditionError) as raised:
        await RunTransitions(store).decide_interruption(
            Scope.ALL, run.id, pending.id, InterruptionStatus.REJECTED, always=False, message=""
        )
    assert raised.value.reason == "INTERRUPTION_ALREADY_DECIDED"
    after = await store.get_run(Scope.ALL, run.id)
    assert after.last_sequence == last_sequence
    assert after.interruptions[0].status is InterruptionStatus.APPROVED


async def test_deciding_an_unknown_interruption(store: RunStore) -> None:
    run = await interrupted_run(store, "call_1")

    with pytest.raises(NotFoundError) as raised:
        await RunTransitions(store).decide_interruption(
            Scope.ALL, run.id, "int_nope", InterruptionStatus.APPROVED, always=False, message=""
        )

    assert raised.value.reason == "INTERRUPTION_NOT_FOUND"


async def test_unknown_run_is_not_found(store: RunStore) -> None:
    with pytest.raises(NotFoundError) as raised:
        await store.get_run(Scope.ALL, "run_does_not_exist")
    assert raised.value.reason == "RUN_NOT_FOUND"
    with pytest.raises(NotFoundError):
        await store.segment_start("run_does_not_exist", 1)
    transitions: list[Callable[[], Awaitable[object]]] = [
        lambda: RunTransitions(store).begin_segment("run_does_not_exist", 1),
        lambda: RunTransitions(store).queue_resume(Scope.ALL, "run_does_not_exist"),
        lambda: RunTransitions(store).cancel_run(
            Scope.ALL, "run_does_not_exist", RunError("cancelled", "test")
        ),
    ]
    for transition in transitions:
        with pytest.raises(NotFoundError) as raised:
            await transition()
        assert raised.value.reason == "RUN_NOT_FOUND"


async def test_finishing_a_superseded_segment_writes_nothing(store: RunStore, pool: asyncpg.Pool) -> None:
    run = await running_run(store)
    before = await stored_state(pool, run.id)
    outcome = SegmentOutcome(
        status=RunStatus.COMPLETED,
        current_agent=run.agent,
        usage=Usage(1, 10, 1, 11),
        final_output="late",
        snapshot=SNAPSHOT,
        interruptions=[interruption("call_late")],
        events=[PendingEvent(EventKind.FINAL_OUTPUT, {"agent": run.agent, "output": "late"})],
    )

    for wrong_segment in (0, 2):
        with pytest.raises(FailedPreconditionError) as raised:
            await RunTransitions(store).finish_segment(run.id, wrong_segment, outcome)
        assert raised.value.reason == "SEGMENT_SUPERSEDED"
    assert await stored_state(pool, run.id) == before

    # Once segment 1 has finished, finishing it again is refused too.
    await RunTransitions(store).finish_segment(run.id, 1, outcome)
    finished = await stored_state(pool, run.id)
    with pytest.raises(FailedPreconditionError):
        await RunTransitions(store).finish_segment(run.id, 1, outcome)
    assert await stored_state(pool, run.id) == finished


async def test_a_segment_that_has_not_begun_cannot_finish(store: RunStore, pool: asyncpg.Pool) -> None:
    run, _, _ = await store.create_run(new_run())
    before = await stored_state(pool, run.id)

    with pytest.raises(FailedPreconditionError) as raised:
        await RunTransitions(store).finish_segment(
            run.id, 1, SegmentOutcome(status=RunStatus.COMPLETED, current_agent=run.agent, usage=Usage())
        )

    assert raised.value.reason == "SEGMENT_SUPERSEDED"
    assert await stored_state(pool, run.id) == before


async def test_a_failing_finish_segment_leaves_no_half_written_rows(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    run = await running_run(store)
    before = await stored_state(pool, run.id)
    # Two interruptions with one call_id violate UNIQUE (run_id, segment, call_id) after the
    # usage, the model calls, the run row and the snapshot were already written in the transaction.
    outcome = SegmentOutcome(
        status=RunStatus.INTERRUPTED,
        current_agent="billing",
        usage=Usage(3, 30, 9, 39),
        snapshot=SNAPSHOT,
        interruptions=[interruption("call_dup"), interruption("call_dup", tool_name="issue_refund")],
        model_calls=[ModelCall("billing", "gpt-fake", Usage(3, 30, 9, 39), True, datetime.now(UTC))],
    )

    with pytest.raises(asyncpg.UniqueViolationError):
        await RunTransitions(store).finish_segment(run.id, 1, outcome)

    after = await stored_state(pool, run.id)
    assert after == before
    assert after["run"]["status"] == "running"
    assert after["run"]["usage_total_tokens"] == 0
    assert after["run_state_snapshots"] == []
    assert after["run_usage"] == []
    assert after["model_calls"] == []
    assert after["interruptions"] == []
    # The run is still finishable by its segment.
    done, _ = await RunTransitions(store).finish_segment(run.id, 1, interrupted_outcome("call_dup"))
    assert done.status is RunStatus.INTERRUPTED


async def test_a_failing_begin_segment_leaves_the_run_queued(
    store: RunStore, pool: asyncpg.Pool, reject_status_events: RejectStatusEvents
) -> None:
    agent = unique("atomic")
    await reject_status_events(agent, RunStatus.RUNNING)
    run, _, _ = await store.create_run(new_run(agent), queue_name="openai")
    before = await stored_state(pool, run.id)

    with pytest.raises(asyncpg.RaiseError):
        await RunTransitions(store).begin_segment(run.id, 1)

    assert await stored_state(pool, run.id) == before
    after = await store.get_run(Scope.ALL, run.id)
    assert (after.status, after.segment_count, after.queue_name) == (RunStatus.QUEUED, 1, "openai")


async def test_a_failing_queue_resume_leaves_the_run_interrupted(
    store: RunStore, pool: asyncpg.Pool, reject_status_events: RejectStatusEvents
) -> None:
    agent = unique("atomic")
    run = await interrupted_run(store, "call_1", agent=agent)
    await RunTransitions(store).decide_interruption(
        Scope.ALL, run.id, run.interruptions[0].id, InterruptionStatus.APPROVED, always=False, message=""
    )
    await reject_status_events(agent, RunStatus.QUEUED)
    before = await stored_state(pool, run.id)

    with pytest.raises(asyncpg.RaiseError):
        await RunTransitions(store).queue_resume(Scope.ALL, run.id, "openai")

    assert await stored_state(pool, run.id) == before
    after = await store.get_run(Scope.ALL, run.id)
    assert (after.status, after.segment_count, after.queue_name) == (RunStatus.INTERRUPTED, 1, "")


# ----- events -------------------------------------------------------------------------------


async def test_concurrent_appends_get_gapless_increasing_sequences(store: RunStore) -> None:
    run = await running_run(store)  # sequences 1 and 2

    def batch(call: int) -> list[PendingEvent]:
        return [
            PendingEvent(
                EventKind.MESSAGE_OUTPUT, {"agent": "a", "text": f"{call}-{part}", "item_json": "{}"}
            )
            for part in range(3)
        ]

    results = await asyncio.gather(
        *(store.events.append_events(run.id, 1, batch(call)) for call in range(20))
    )

    for call, events in enumerate(results):
        sequences = [e.sequence for e in events]
        assert sequences == list(range(sequences[0], sequences[0] + 3)), "one call's events are contiguous"
        assert [e.payload["text"] for e in events] == [f"{call}-{part}" for part in range(3)]
    all_sequences = sorted(e.sequence for events in results for e in events)
    assert all_sequences == list(range(3, 63))
    stored = await store.events.list_events(run.id, 0)
    assert [e.sequence for e in stored] == list(range(1, 63))
    assert (await store.get_run(Scope.ALL, run.id)).last_sequence == 62
    # list_events pages by sequence.
    assert [e.sequence for e in await store.events.list_events(run.id, 10, limit=5)] == [11, 12, 13, 14, 15]
    assert await store.events.list_events(run.id, 62) == []


async def test_append_nothing_writes_nothing(store: RunStore) -> None:
    run, _, _ = await store.create_run(new_run())

    assert await store.events.append_events(run.id, 0, []) == []
    assert (await store.get_run(Scope.ALL, run.id)).last_sequence == 1


def message(text: str, key: str | None = None) -> PendingEvent:
    return PendingEvent(
        EventKind.MESSAGE_OUTPUT, {"agent": "a", "text": text, "item_json": "{}"}, dedupe_key=key
    )


async def stored_keys(pool: asyncpg.Pool, run_id: str) -> list[tuple[int, str | None]]:
    rows = await pool.fetch(
        "SELECT sequence, dedupe_key FROM run_events WHERE run_id = $1 ORDER BY sequence", run_id
    )
    return [(row["sequence"], row["dedupe_key"]) for row in rows]


async def test_appending_the_same_keyed_events_again_stores_nothing(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    run = await running_run(store)  # sequences 1 and 2
    batch = [message("one", "1:1"), message("two", "1:2")]

    first = await store.events.append_events(run.id, 1, batch)
    before = await stored_state(pool, run.id)
    replayed = await store.events.append_events(run.id, 1, batch)  # a replayed segment emits them again

    assert [(e.sequence, e.payload["text"]) for e in first] == [(3, "one"), (4, "two")]
    assert replayed == []
    assert (await store.get_run(Scope.ALL, run.id)).last_sequence == 4
    assert await stored_state(pool, run.id) == before  # not even update_time moved
    assert await store.events.list_events(run.id, 2) == first


async def test_a_partly_replayed_batch_stores_only_its_new_events(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    run = await running_run(store)
    await store.events.append_events(run.id, 1, [message("one", "1:1"), message("two", "1:2")])  # 3, 4

    mixed = await store.events.append_events(
        run.id,
        1,
        [
            message("one", "1:1"),
            message("three", "1:3"),
            message("two", "1:2"),
            message("four", "1:4"),
            message("unkeyed"),
        ],
    )

    assert [(e.sequence, e.segment, e.payload["text"]) for e in mixed] == [
        (5, 1, "three"),
        (6, 1, "four"),
        (7, 1, "unkeyed"),
    ]
    assert (await store.get_run(Scope.ALL, run.id)).last_sequence == 7
    assert await stored_keys(pool, run.id) == [
        (1, None),
        (2, None),
        (3, "1:1"),
        (4, "1:2"),
        (5, "1:3"),
        (6, "1:4"),
        (7, None),
    ]


async def test_events_without_a_key_are_always_stored_and_keys_belong_to_one_run(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    run = await running_run(store)
    neighbour = await running_run(store)

    unkeyed = [await store.events.append_events(run.id, 1, [message("same")]) for _ in range(2)]
    keyed_here = await store.events.append_events(run.id, 1, [message("keyed", "1:1")])
    keyed_there = await store.events.append_events(neighbour.id, 1, [message("keyed", "1:1")])

    assert [[e.sequence for e in events] for events in unkeyed] == [[3], [4]]
    assert [e.sequence for e in keyed_here] == [5]
    assert [(e.run_id, e.sequence) for e in keyed_there] == [(neighbour.id, 3)]
    assert await stored_keys(pool, neighbour.id) == [(1, None), (2, None), (3, "1:1")]


async def test_concurrent_replays_of_one_batch_store_it_once(store: RunStore) -> None:
    run = await running_run(store)
    batch = [message(str(n), f"1:{n}") for n in range(1, 4)]

    results = await asyncio.gather(*(store.events.append_events(run.id, 1, batch) for _ in range(10)))

    stored_by = [events for events in results if events]
    assert len(stored_by) == 1
    assert [(e.sequence, e.payload["text"]) for e in stored_by[0]] == [(3, "1"), (4, "2"), (5, "3")]
    assert [e.sequence for e in await store.events.list_events(run.id, 0)] == [1, 2, 3, 4, 5]
    assert (await store.get_run(Scope.ALL, run.id)).last_sequence == 5


Notifications = asyncio.Queue[str]


@pytest.fixture
async def notifications(database_url: str) -> AsyncIterator[Notifications]:
    """Payloads NOTIFYed on the run events channel, heard by a connection of their own (as
    another process would)."""
    listener = await asyncpg.connect(database_url)
    received: Notifications = asyncio.Queue()

    def on_notification(connection: object, pid: int, channel: str, payload: object) -> None:
        received.put_nowait(str(payload))

    await listener.add_listener(EVENTS_CHANNEL, on_notification)
    try:
        yield received
    finally:
        await listener.close()


async def next_notification(received: Notifications, run_id: str) -> str:
    """The next payload about `run_id` (other tests' runs share the channel)."""

    async def wait() -> str:
        while True:
            payload = await received.get()
            if payload.rsplit(":", 2)[1] == run_id:
                return payload

    return await asyncio.wait_for(wait(), WAIT)


async def test_stored_events_are_notified_once_committed(
    pool: asyncpg.Pool, notifications: Notifications, reject_status_events: RejectStatusEvents
) -> None:
    agent = unique("notify")
    store = RunStore(pool, origin="replica_a")
    reader = RunStore(pool)

    run = await running_run(store, agent)
    assert await next_notification(notifications, run.id) == f"replica_a:{run.id}:1"
    assert await next_notification(notifications, run.id) == f"replica_a:{run.id}:2"

    # A listener that hears about sequence N finds the events up to N in the store.
    appending = asyncio.create_task(store.events.append_events(run.id, 1, [message("a"), message("b")]))
    payload = await next_notification(notifications, run.id)
    assert payload == f"replica_a:{run.id}:4"
    assert [e.sequence for e in await reader.events.list_events(run.id, 0)] == [1, 2, 3, 4]
    assert [e.sequence for e in await appending] == [3, 4]

    # A transaction that fails to commit (after everything, NOTIFY included, was done in it)
    # notifies nothing, and neither does an append that stores nothing: the next notification
    # is the next commit's.
    await reject_status_events(agent, RunStatus.INTERRUPTED, at_commit=True)
    with pytest.raises(asyncpg.RaiseError, match="test trigger rejects"):
        await RunTransitions(store).finish_segment(
            run.id, 1, interrupted_outcome("call_x")
        )  # would store 5, 6, 7
    assert (await reader.get_run(Scope.ALL, run.id)).last_sequence == 4
    await store.events.append_events(run.id, 1, [message("c", "1:1"), message("d", "1:2")])  # 5, 6
    assert await next_notification(notifications, run.id) == f"replica_a:{run.id}:6"
    assert await store.events.append_events(run.id, 1, [message("c", "1:1")]) == []
    await store.events.append_events(run.id, 1, [message("e")])  # 7
    assert await next_notification(notifications, run.id) == f"replica_a:{run.id}:7"


async def test_events_of_a_segment_whose_run_moved_on_are_dropped(store: RunStore) -> None:
    run = await running_run(store)
    cancelled, _ = await RunTransitions(store).cancel_run(Scope.ALL, run.id, RunError("cancelled", "Stop."))

    assert await store.events.append_events(run.id, 1, [message("late")]) == []
    assert (await store.get_run(Scope.ALL, run.id)).last_sequence == cancelled.last_sequence


async def test_every_transition_notifies_with_the_stores_origin(
    store: RunStore, notifications: Notifications
) -> None:
    run = await running_run(store)  # the store fixture has no origin
    assert await next_notification(notifications, run.id) == f":{run.id}:1"
    assert await next_notification(notifications, run.id) == f":{run.id}:2"

    finished, _ = await RunTransitions(store).finish_segment(run.id, 1, interrupted_outcome("call_1"))
    assert await next_notification(notifications, run.id) == f":{run.id}:{finished.last_sequence}"
    await RunTransitions(store).decide_interruption(
        Scope.ALL, run.id, finished.interruptions[0].id, InterruptionStatus.APPROVED, always=False, message=""
    )
    queued, _ = await RunTransitions(store).queue_resume(Scope.ALL, run.id)
    decision, resume = queued.last_sequence - 1, queued.last_sequence
    assert await next_notification(notifications, run.id) == f":{run.id}:{decision}"
    assert await next_notification(notifications, run.id) == f":{run.id}:{resume}"
    cancelled, _ = await RunTransitions(store).cancel_run(Scope.ALL, run.id, RunError("cancelled", "test"))
    assert await next_notification(notifications, run.id) == f":{run.id}:{cancelled.last_sequence}"


# ----- cancellation ---------------------------------------------------------------------------


async def test_cancelling_an_interrupted_run(store: RunStore) -> None:
    run = await interrupted_run(store, "call_1")
    error = RunError("CANCELLED", "Cancelled by the test.")

    cancelled, events = await RunTransitions(store).cancel_run(Scope.ALL, run.id, error)

    assert cancelled.status is RunStatus.CANCELLED
    assert cancelled.error == error
    assert [(e.segment, e.kind, e.payload["status"]) for e in events] == [
        (1, EventKind.STATUS_CHANGED, "cancelled")
    ]
    with pytest.raises(FailedPreconditionError) as raised:
        await RunTransitions(store).decide_interruption(
            Scope.ALL, run.id, run.interruptions[0].id, InterruptionStatus.APPROVED, always=False, message=""
        )
    assert raised.value.reason == "RUN_NOT_INTERRUPTED"
    with pytest.raises(FailedPreconditionError) as not_resumable:
        await RunTransitions(store).queue_resume(Scope.ALL, run.id)
    assert not_resumable.value.reason == "RUN_NOT_RESUMABLE"
    with pytest.raises(FailedPreconditionError) as again:
        await RunTransitions(store).cancel_run(Scope.ALL, run.id, error)
    assert again.value.reason == "RUN_FINISHED"


async def test_cancelling_a_queued_run_keeps_its_segment_from_beginning(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    run, _, _ = await store.create_run(new_run(), queue_name="openai")
    error = RunError("cancelled", "Cancelled before it began.")

    cancelled, events = await RunTransitions(store).cancel_run(Scope.ALL, run.id, error)

    assert cancelled.status is RunStatus.CANCELLED
    assert cancelled.error == error
    assert (cancelled.segment_count, cancelled.queue_name) == (1, "")
    assert [(e.sequence, e.segment, e.kind, e.payload) for e in events] == [
        (2, 1, EventKind.STATUS_CHANGED, {"status": "cancelled", "reason": error.message})
    ]
    assert events[0].stopped_status is RunStatus.CANCELLED
    assert run.id not in {run_id for run_id, _, _ in await store.queued_segments()}
    before = await stored_state(pool, run.id)

    # Its queued workflow, when it gets to run, finds nothing to do.
    assert await RunTransitions(store).begin_segment(run.id, 1) == (None, [])
    assert await stored_state(pool, run.id) == before


async def test_cancelling_a_running_run_discards_its_segments_outcome(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    run = await running_run(store)
    await store.events.append_events(run.id, 1, [message("partial")])  # 3
    error = RunError("cancelled", "Cancelled while running.")

    cancelled, events = await RunTransitions(store).cancel_run(Scope.ALL, run.id, error)

    assert cancelled.status is RunStatus.CANCELLED
    assert cancelled.error == error
    assert cancelled.segment_count == 1
    assert [(e.sequence, e.segment, e.payload) for e in events] == [
        (4, 1, {"status": "cancelled", "reason": error.message})
    ]
    before = await stored_state(pool, run.id)

    # The segment, still executing when it was cancelled, cannot record its outcome...
    with pytest.raises(FailedPreconditionError) as raised:
        await RunTransitions(store).finish_segment(
            run.id,
            1,
            SegmentOutcome(
                status=RunStatus.COMPLETED,
                current_agent=run.agent,
                usage=Usage(1, 10, 1, 11),
                final_output="too late",
                snapshot=SNAPSHOT,
                interruptions=[interruption("call_late")],
                events=[PendingEvent(EventKind.FINAL_OUTPUT, {"agent": run.agent, "output": "too late"})],
            ),
        )
    assert raised.value.reason == "SEGMENT_SUPERSEDED"
    # ...nor begin again when recovery replays it.
    assert await RunTransitions(store).begin_segment(run.id, 1) == (None, [])
    assert await stored_state(pool, run.id) == before
    assert (await store.get_run(Scope.ALL, run.id)).final_output == ""


async def test_a_finished_run_cannot_be_cancelled(store: RunStore, pool: asyncpg.Pool) -> None:
    completed = await running_run(store)
    await RunTransitions(store).finish_segment(
        completed.id, 1, SegmentOutcome(status=RunStatus.COMPLETED, current_agent="a", usage=Usage())
    )
    failed = await running_run(store)
    await RunTransitions(store).finish_segment(
        failed.id,
        1,
        SegmentOutcome(
            status=RunStatus.FAILED, current_agent="a", usage=Usage(), error=RunError("boom", "Boom.")
        ),
    )
    cancelled, _, _ = await store.create_run(new_run())
    await RunTransitions(store).cancel_run(Scope.ALL, cancelled.id, RunError("cancelled", "first"))

    for run_id in (completed.id, failed.id, cancelled.id):
        before = await stored_state(pool, run_id)
        with pytest.raises(FailedPreconditionError) as raised:
            await RunTransitions(store).cancel_run(Scope.ALL, run_id, RunError("cancelled", "second"))
        assert raised.value.reason == "RUN_FINISHED"
        assert await stored_state(pool, run_id) == before


async def test_a_failing_cancel_leaves_the_run_running(
    store: RunStore, pool: asyncpg.Pool, reject_status_events: RejectStatusEvents
) -> None:
    agent = unique("atomic")
    await reject_status_events(agent, RunStatus.CANCELLED)
    run = await running_run(store, agent)
    before = await stored_state(pool, run.id)

    with pytest.raises(asyncpg.RaiseError):
        await RunTransitions(store).cancel_run(Scope.ALL, run.id, RunError("cancelled", "test"))

    assert await stored_state(pool, run.id) == before
    after = await store.get_run(Scope.ALL, run.id)
    assert (after.status, after.error) == (RunStatus.RUNNING, None)


# ----- durable execution: queued segments, tool markers, replicas ------------------------------


async def test_queued_segments_lists_exactly_the_queued_runs(store: RunStore) -> None:
    queued, _, _ = await store.create_run(new_run(), queue_name="openai")
    unqueued, _, _ = await store.create_run(new_run())
    resumed = await interrupted_run(store, "call_1")
    await RunTransitions(store).decide_interruption(
        Scope.ALL,
        resumed.id,
        resumed.interruptions[0].id,
        InterruptionStatus.APPROVED,
        always=False,
        message="",
    )
    await RunTransitions(store).queue_resume(Scope.ALL, resumed.id, "ollama")
    running = await running_run(store)
    paused = await interrupted_run(store, "call_2")
    cancelled, _, _ = await store.create_run(new_run(), queue_name="openai")
    await RunTransitions(store).cancel_run(Scope.ALL, cancelled.id, RunError("cancelled", "test"))
    completed = await running_run(store)
    await RunTransitions(store).finish_segment(
        completed.id, 1, SegmentOutcome(status=RunStatus.COMPLETED, current_agent="a", usage=Usage())
    )
    ours = {run.id for run in (queued, unqueued, resumed, running, paused, cancelled, completed)}

    listed = [entry for entry in await store.queued_segments() if entry[0] in ours]

    assert sorted(listed) == sorted(
        [(queued.id, 1, "openai"), (unqueued.id, 1, ""), (resumed.id, 2, "ollama")]
    )


async def test_a_tool_call_is_marked_started_only_once(
    store: RunStore, pool: asyncpg.Pool, journal_store: JournalStore
) -> None:
    run = await running_run(store)

    assert await journal_store.mark_tool_started(run.id, 1, "call_1", "send_email", "replica_a", "a1") is True
    # The same execution's write repeated (its reply was lost) still finds the call its own.
    assert await journal_store.mark_tool_started(run.id, 1, "call_1", "send_email", "replica_a", "a1") is True
    # A replay (here on another replica) finds the call already started.
    assert (
        await journal_store.mark_tool_started(run.id, 1, "call_1", "send_email", "replica_b", "b1") is False
    )
    assert await journal_store.mark_tool_started(run.id, 1, "call_2", "send_email", "replica_a", "a2") is True
    assert await journal_store.mark_tool_started(run.id, 2, "call_1", "send_email", "replica_b", "b2") is True

    rows = await pool.fetch(
        """SELECT segment, call_id, tool_name, executor_id FROM tool_invocations
           WHERE run_id = $1 ORDER BY segment, call_id""",
        run.id,
    )
    assert [tuple(row) for row in rows] == [
        (1, "call_1", "send_email", "replica_a"),
        (1, "call_2", "send_email", "replica_a"),
        (2, "call_1", "send_email", "replica_b"),
    ]


async def test_concurrent_starts_of_one_tool_call_mark_it_once(
    store: RunStore, pool: asyncpg.Pool, journal_store: JournalStore
) -> None:
    run = await running_run(store)

    results = await asyncio.gather(
        *(
            journal_store.mark_tool_started(run.id, 1, "call_1", "send_email", f"replica_{n}", str(n))
            for n in range(8)
        )
    )

    assert sorted(results) == [False] * 7 + [True]
    assert await pool.fetchval("SELECT count(*) FROM tool_invocations WHERE run_id = $1", run.id) == 1


# Replicas this old or older are dead. Every replica row lives in the database all tests share,
# so claims are checked only for this test's replicas, and "dead" means hours, not seconds.
REPLICA_TIMEOUT_S = 3600.0


async def silence(pool: asyncpg.Pool, seconds: float, *executor_ids: str) -> None:
    """Make replicas look as if they last heartbeat `seconds` ago."""
    await pool.execute(
        """UPDATE replicas SET heartbeat_time = clock_timestamp() - make_interval(secs => $1)
           WHERE executor_id = ANY($2::text[])""",
        seconds,
        list(executor_ids),
    )


async def recovered_by(pool: asyncpg.Pool, *executor_ids: str) -> dict[str, str | None]:
    rows = await pool.fetch(
        "SELECT executor_id, recovered_by FROM replicas WHERE executor_id = ANY($1::text[])",
        list(executor_ids),
    )
    return {row["executor_id"]: row["recovered_by"] for row in rows}


async def test_dead_replicas_are_claimed_once_by_a_live_replica_and_never_by_themselves(
    store: RunStore, pool: asyncpg.Pool, replica_store: ReplicaStore
) -> None:
    dead_a, dead_b, quiet, alive, claimer, latecomer = (unique("replica") for _ in range(6))
    ours = {dead_a, dead_b, quiet, alive, claimer, latecomer}
    for executor_id in ours:
        await replica_store.heartbeat(executor_id)
    await silence(pool, 2 * REPLICA_TIMEOUT_S, dead_a, dead_b, claimer)
    await silence(pool, REPLICA_TIMEOUT_S / 2, quiet)  # silent, but not for long enough

    claimed = await replica_store.claim_dead_replicas(claimer, REPLICA_TIMEOUT_S)

    # The claimer's own heartbeat is as stale as the dead ones', yet it does not claim itself.
    assert set(claimed) & ours == {dead_a, dead_b}
    assert set(await replica_store.claim_dead_replicas(claimer, REPLICA_TIMEOUT_S)) & ours == set()
    # The claimer has gone silent too, so another replica claims it and, since nobody alive is
    # recovering them any more, the replicas it had claimed.
    assert set(await replica_store.claim_dead_replicas(latecomer, REPLICA_TIMEOUT_S)) & ours == {
        claimer,
        dead_a,
        dead_b,
    }
    # With a live claimer (the latecomer heartbeats), nothing is claimed twice.
    await replica_store.heartbeat(latecomer)
    assert set(await replica_store.claim_dead_replicas(alive, REPLICA_TIMEOUT_S)) & ours == set()
    assert await recovered_by(pool, *ours) == {
        dead_a: latecomer,
        dead_b: latecomer,
        claimer: latecomer,
        quiet: None,
        alive: None,
        latecomer: None,
    }


async def test_concurrent_claimers_claim_each_dead_replica_once(
    store: RunStore, pool: asyncpg.Pool, replica_store: ReplicaStore
) -> None:
    dead = [unique("replica") for _ in range(4)]
    for executor_id in dead:
        await replica_store.heartbeat(executor_id)
    await silence(pool, 2 * REPLICA_TIMEOUT_S, *dead)
    claimers = [unique("claimer") for _ in range(6)]
    for claimer in claimers:  # a replica heartbeats before it looks for dead ones
        await replica_store.heartbeat(claimer)

    results = await asyncio.gather(
        *(replica_store.claim_dead_replicas(claimer, REPLICA_TIMEOUT_S) for claimer in claimers)
    )

    claims = [executor_id for claimed in results for executor_id in claimed if executor_id in dead]
    assert sorted(claims) == sorted(dead)


async def test_a_heartbeat_unclaims_a_replica(
    store: RunStore, pool: asyncpg.Pool, replica_store: ReplicaStore
) -> None:
    revived, claimer = unique("replica"), unique("replica")
    await replica_store.heartbeat(revived)
    await silence(pool, 2 * REPLICA_TIMEOUT_S, revived)
    assert revived in await replica_store.claim_dead_replicas(claimer, REPLICA_TIMEOUT_S)

    await replica_store.heartbeat(revived)  # it was only slow, and is back

    assert await recovered_by(pool, revived) == {revived: None}
    assert await pool.fetchval(
        """SELECT heartbeat_time > clock_timestamp() - interval '1 minute'
           FROM replicas WHERE executor_id = $1""",
        revived,
    )
    assert revived not in await replica_store.claim_dead_replicas(claimer, REPLICA_TIMEOUT_S)
    # Should it fall silent again, it is claimed again.
    await silence(pool, 2 * REPLICA_TIMEOUT_S, revived)
    assert revived in await replica_store.claim_dead_replicas(claimer, REPLICA_TIMEOUT_S)


# ----- listing --------------------------------------------------------------------------------


async def test_list_runs_pages_newest_first_and_filters(store: RunStore) -> None:
    agent = unique("lister")
    session = unique("session")
    created = []
    for index in range(5):
        run, _, _ = await store.create_run(
            new_run(agent, session_id=session if index < 2 else unique("session"))
        )
        created.append(run.id)
    for run_id in created[3:]:
        await RunTransitions(store).begin_segment(run_id, 1)
    newest_first = created[::-1]

    pages: list[list[str]] = []
    token = ""
    while True:
        page = await store.list_runs(Scope.ALL, RunFilter(agent=agent), 2, token)
        pages.append([run.id for run in page.items])
        token = page.next_page_token
        if not token:
            break
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]

    everything = await store.list_runs(Scope.ALL, RunFilter(agent=agent), 0, "")
    assert [run.id for run in everything.items] == newest_first
    assert everything.next_page_token == ""

    exact = await store.list_runs(Scope.ALL, RunFilter(agent=agent), 5, "")
    assert len(exact.items) == 5
    assert exact.next_page_token == ""

    running = await store.list_runs(Scope.ALL, RunFilter(agent=agent, status=RunStatus.RUNNING), 10, "")
    assert [run.id for run in running.items] == newest_first[:2]
    assert all(run.status is RunStatus.RUNNING for run in running.items)

    by_session = await store.list_runs(Scope.ALL, RunFilter(session_id=session), 10, "")
    assert [run.id for run in by_session.items] == created[1::-1]

    combined = await store.list_runs(
        Scope.ALL, RunFilter(agent=agent, session_id=session, status=RunStatus.QUEUED), 10, ""
    )
    assert [run.id for run in combined.items] == created[1::-1]

    nothing = await store.list_runs(Scope.ALL, RunFilter(agent=unique("nobody")), 10, "")
    assert nothing.items == []
    assert nothing.next_page_token == ""


async def test_list_runs_rejects_bad_page_arguments(store: RunStore) -> None:
    agent = unique("lister")
    for _ in range(2):
        await store.create_run(new_run(agent))
    first = await store.list_runs(Scope.ALL, RunFilter(agent=agent), 1, "")
    assert first.next_page_token

    with pytest.raises(InvalidArgumentError) as other_filter:
        await store.list_runs(Scope.ALL, RunFilter(agent=unique("other")), 1, first.next_page_token)
    assert other_filter.value.field == "page_token"
    with pytest.raises(InvalidArgumentError) as garbage:
        await store.list_runs(Scope.ALL, RunFilter(agent=agent), 1, "not-a-token")
    assert garbage.value.field == "page_token"
    with pytest.raises(InvalidArgumentError) as negative:
        await store.list_runs(Scope.ALL, RunFilter(agent=agent), -1, "")
    assert negative.value.field == "page_size"


async def test_list_pending_interruptions(store: RunStore) -> None:
    waiting = await interrupted_run(store, "call_1", "call_2")
    decided = await interrupted_run(store, "call_3")
    await RunTransitions(store).decide_interruption(
        Scope.ALL,
        decided.id,
        decided.interruptions[0].id,
        InterruptionStatus.APPROVED,
        always=False,
        message="",
    )
    cancelled = await interrupted_run(store, "call_4")
    await RunTransitions(store).cancel_run(Scope.ALL, cancelled.id, RunError("CANCELLED", "test"))

    listed: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await store.list_interruptions(Scope.ALL, "", 2, token)
        assert len(page.items) <= 2
        assert all(i.status is InterruptionStatus.PENDING for i in page.items)
        listed += [i.id for i in page.items]
        pages += 1
        token = page.next_page_token
        if not token:
            break

    assert len(listed) == len(set(listed)), "no interruption appears on two pages"
    ours = [i for i in listed if i in {j.id for j in waiting.interruptions}]
    assert ours == [i.id for i in waiting.interruptions]
    assert decided.interruptions[0].id not in listed
    assert cancelled.interruptions[0].id not in listed
    if len(listed) > 2:
        assert pages > 1
    with pytest.raises(InvalidArgumentError):
        await store.list_interruptions(Scope.ALL, "", 2, "bogus")


async def test_runs_are_still_read_after_a_newer_build_adds_an_interruptions_column(
    durable_database: str,
) -> None:
    """A rolling upgrade: this build's pool is open while another replica migrates the schema."""
    pool = await open_pool(durable_database, max_size=1)  # one connection: it read the old schema
    try:
        store = RunStore(pool)
        run = await interrupted_run(store, "call_1")
        before = await store.get_run(Scope.ALL, run.id)
        await pool.execute("ALTER TABLE interruptions ADD COLUMN added_by_a_newer_build text")

        after = await store.get_run(Scope.ALL, run.id)
        listed = await store.list_runs(Scope.ALL, RunFilter(agent=run.agent), 10, "")
    finally:
        await pool.close()

    assert after == before
    assert [i.call_id for i in after.interruptions] == ["call_1"]
    assert listed.items == [before]
