"""The run store's scopes against real PostgreSQL: a tenant's scope sees that tenant's runs only
(another tenant's is NOT_FOUND, exactly like a missing one, and nothing of it changes), and the
active-run limit the store was built with counts each tenant's runs apart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from timestep.domain import InterruptionStatus, ModelCall, RunError, RunFilter, RunStatus, Usage, UsageFilter
from timestep.errors import InvalidArgumentError, NotFoundError, ResourceExhaustedError
from timestep.runs.apply import RunTransitions
from timestep.scope import Scope
from timestep.store.runs import RunStore
from timestep.store.usage import UsageStore

from tests.integration.test_run_store import interrupted_outcome, new_run, stored_state, unique

CALL_USAGE = Usage(1, 10, 5, 15)


async def interrupted_run_of(store: RunStore, tenant: str, agent: str) -> str:
    """A run of `tenant` INTERRUPTED after one model call of `agent`'s."""
    run, _, _ = await store.create_run(new_run(agent, tenant=tenant))
    await RunTransitions(store).begin_segment(run.id, 1)
    call = ModelCall(agent, "gpt-fake", CALL_USAGE, True, datetime.now(UTC))
    outcome = replace(interrupted_outcome("call_1"), usage=CALL_USAGE, model_calls=[call])
    finished, _ = await RunTransitions(store).finish_segment(run.id, 1, outcome)
    assert finished.status is RunStatus.INTERRUPTED
    return run.id


async def test_another_tenants_run_is_not_found_and_left_unchanged(
    store: RunStore, pool: asyncpg.Pool
) -> None:
    owner, other, agent = unique("tenant"), unique("tenant"), unique("agent")
    run_id = await interrupted_run_of(store, owner, agent)
    interruption_id = (await store.get_run(Scope.ALL, run_id)).interruptions[0].id
    before = await stored_state(pool, run_id)
    outsider = Scope.tenant(other)

    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: store.get_run(outsider, run_id),
        lambda: store.list_interruptions(outsider, run_id, 10, ""),
        lambda: RunTransitions(store).decide_interruption(
            outsider, run_id, interruption_id, InterruptionStatus.APPROVED, always=False, message=""
        ),
        lambda: RunTransitions(store).queue_resume(outsider, run_id),
        lambda: RunTransitions(store).cancel_run(outsider, run_id, RunError("cancelled", "Not yours.")),
    ]
    for call in calls:
        with pytest.raises(NotFoundError) as refused:
            await call()
        assert refused.value.reason == "RUN_NOT_FOUND"
    assert (await store.list_runs(outsider, RunFilter(agent=agent), 10, "")).items == []
    assert (await store.list_interruptions(outsider, "", 500, "")).items == []
    assert await stored_state(pool, run_id) == before

    # The owner's scope and the service's own see it.
    for scope in (Scope.tenant(owner), Scope.ALL):
        assert (await store.get_run(scope, run_id)).id == run_id
        assert [run.id for run in (await store.list_runs(scope, RunFilter(agent=agent), 10, "")).items] == [
            run_id
        ]
        assert [i.run_id for i in (await store.list_interruptions(scope, "", 500, "")).items].count(
            run_id
        ) == 1


async def test_a_page_token_of_one_scope_is_refused_in_another(store: RunStore) -> None:
    tenant, agent = unique("tenant"), unique("agent")
    for _ in range(2):
        await store.create_run(new_run(agent, tenant=tenant))
    first = await store.list_runs(Scope.tenant(tenant), RunFilter(agent=agent), 1, "")
    assert first.next_page_token

    with pytest.raises(InvalidArgumentError) as refused:
        await store.list_runs(
            Scope.tenant(unique("tenant")), RunFilter(agent=agent), 1, first.next_page_token
        )
    assert refused.value.field == "page_token"


async def test_usage_is_summed_over_the_scopes_runs_only(store: RunStore, pool: asyncpg.Pool) -> None:
    owner, agent = unique("tenant"), unique("agent")
    await interrupted_run_of(store, owner, agent)
    usage = UsageStore(pool)

    mine = await usage.summarize(Scope.tenant(owner), UsageFilter(agent=agent))
    theirs = await usage.summarize(Scope.tenant(unique("tenant")), UsageFilter(agent=agent))

    assert mine.run_count == 1
    assert mine.total == CALL_USAGE
    assert theirs.run_count == 0


async def test_the_active_run_limit_given_at_construction_counts_each_tenant_apart(
    pool: asyncpg.Pool,
) -> None:
    limited = RunStore(pool, max_active_runs=1)
    busy, calm = unique("tenant"), unique("tenant")
    first, _, _ = await limited.create_run(new_run(tenant=busy))

    with pytest.raises(ResourceExhaustedError) as refused:
        await limited.create_run(new_run(tenant=busy))
    assert refused.value.reason == "TOO_MANY_ACTIVE_RUNS"
    await limited.create_run(new_run(tenant=calm))  # another tenant has room of its own

    # A run that finishes makes room again.
    await RunTransitions(limited).cancel_run(
        Scope.tenant(busy), first.id, RunError("cancelled", "Done with it.")
    )
    await limited.create_run(new_run(tenant=busy))
