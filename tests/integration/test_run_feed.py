"""The run feed (WatchRuns' source) on real PostgreSQL: entries in commit-safe order, each
tenant's own, and never passed over by a cursor while an older transaction could still commit
one before it; transactions of other databases on the server hold nothing back."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from timestep.domain import EventKind, NewRun
from timestep.errors import InvalidArgumentError
from timestep.run_feed import FeedCursor
from timestep.scope import Scope
from timestep.store.events import EVENTS_CHANNEL
from timestep.store.runs import RunStore


async def new_run(store: RunStore, tenant: str) -> str:
    run, _, _ = await store.create_run(NewRun(agent="feed", input="Hi", tenant=tenant))
    return run.id


async def test_entries_of_a_transaction_still_open_hold_back_the_ones_after_them(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    tenant = f"feed-{uuid.uuid4().hex[:8]}"
    scope = Scope.tenant(tenant)
    early = await new_run(store, tenant)
    start = await store.feed.head()
    async with pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        # An older transaction stores a status change of `early` and has not committed yet...
        await connection.execute("SELECT id FROM runs WHERE id = $1 FOR UPDATE", early)
        await connection.fetch(
            "SELECT * FROM timestep_append_events($1, 1, $2, $3, $4, $5, $6, false)",
            early,
            [EventKind.STATUS_CHANGED.value],
            [{"status": "running", "reason": ""}],
            [None],
            EVENTS_CHANNEL,
            "test:",
        )
        # ...while a newer one commits a new run.
        late = await new_run(store, tenant)

        held = await store.feed.after(scope, start)
        assert held.changes == [], "nothing may be read past an entry that can still commit before it"
        assert held.held_back

        await transaction.commit()

    batch = await store.feed.after(scope, start)
    assert not batch.held_back
    assert [(c.event.run_id, c.event.payload["status"]) for c in batch.changes] == [
        (early, "running"),
        (late, "queued"),
    ]
    assert [c.agent for c in batch.changes] == ["feed", "feed"]
    # Continuing from the first entry's cursor gives the rest; from the last, nothing.
    rest = await store.feed.after(scope, batch.changes[0].cursor)
    assert [c.event.run_id for c in rest.changes] == [late]
    assert (await store.feed.after(scope, batch.changes[-1].cursor)).changes == []


async def test_a_transaction_in_another_database_holds_nothing_back(
    store: RunStore, database_url: str
) -> None:
    tenant = f"feed-{uuid.uuid4().hex[:8]}"
    other = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/postgres")
    try:
        async with other.transaction():
            await other.fetchval("SELECT pg_current_xact_id()")  # running, with a transaction id
            start = await store.feed.head()
            run_id = await new_run(store, tenant)
            batch = await store.feed.after(Scope.tenant(tenant), start)
    finally:
        await other.close()
    assert not batch.held_back
    assert [c.event.run_id for c in batch.changes] == [run_id]


async def test_a_tenant_reads_only_its_own_entries(store: RunStore) -> None:
    mine, theirs = f"feed-{uuid.uuid4().hex[:8]}", f"feed-{uuid.uuid4().hex[:8]}"
    start = await store.feed.head()
    run_id = await new_run(store, mine)
    await new_run(store, theirs)
    batch = await store.feed.after(Scope.tenant(mine), start)
    assert [c.event.run_id for c in batch.changes] == [run_id]


@pytest.mark.parametrize("text", ["", "yesterday", "1:run_x", "1:run x:2", "-1:run_x:2", "1:run_x:2:3"])
def test_a_cursor_the_service_did_not_issue_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        FeedCursor.decode(text)
    assert refused.value.field == "cursor"


def test_a_cursor_round_trips() -> None:
    cursor = FeedCursor(12345, "run_0f8c", 7)
    assert FeedCursor.decode(cursor.encode()) == cursor
