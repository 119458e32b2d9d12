"""Fixtures for tests that talk to the real PostgreSQL of this test run."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from timestep.durability.journal_store import JournalStore
from timestep.durability.replica_store import ReplicaStore
from timestep.store.database import open_pool
from timestep.store.runs import RunStore


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the (migrated) test database, bound to this test's event loop."""
    opened = await open_pool(database_url, max_size=10)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def store(pool: asyncpg.Pool) -> RunStore:
    return RunStore(pool)


@pytest.fixture
def journal_store(pool: asyncpg.Pool) -> JournalStore:
    return JournalStore(pool)


@pytest.fixture
def replica_store(pool: asyncpg.Pool) -> ReplicaStore:
    return ReplicaStore(pool)
