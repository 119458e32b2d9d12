"""The embedded PostgreSQL (pgserver) fallback: start it, create and migrate the database, store a run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from timestep.domain import NewRun, RunStatus
from timestep.scope import Scope
from timestep.store.database import (
    DEFAULT_DATABASE_NAME,
    _start_embedded_server,
    ensure_database_exists,
    open_pool,
    with_database,
)
from timestep.store.migrations import available_migrations
from timestep.store.runs import RunStore

# pgserver (imported lazily, as the service does) warns that this container has no XDG_RUNTIME_DIR.
pytestmark = pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR is not set")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh data directory; the embedded server in it is stopped after the test."""
    directory = tmp_path / "timestep-data"
    try:
        yield directory
    finally:
        if (directory / "pgdata" / "PG_VERSION").exists():
            from pgserver.postgres_server import get_server

            get_server(directory / "pgdata").cleanup()


async def test_embedded_server_starts_migrates_and_stores_a_run(data_dir: Path) -> None:
    admin_dsn = await asyncio.to_thread(_start_embedded_server, data_dir)

    assert (data_dir / "pgdata" / "PG_VERSION").exists()
    await ensure_database_exists(admin_dsn, DEFAULT_DATABASE_NAME)
    await ensure_database_exists(admin_dsn, DEFAULT_DATABASE_NAME)  # idempotent
    pool = await open_pool(with_database(admin_dsn, DEFAULT_DATABASE_NAME), max_size=2)
    try:
        assert await pool.fetchval("SELECT current_database()") == DEFAULT_DATABASE_NAME
        versions = await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [row["version"] for row in versions] == [m.version for m in available_migrations()]

        store = RunStore(pool)
        run, events, created = await store.create_run(
            NewRun(agent="assistant", input="Hello", request_id="r1")
        )

        assert created
        stored = await store.get_run(Scope.ALL, run.id)
        assert stored.status is RunStatus.QUEUED
        assert (await store.segment_start(run.id, 1))[1] == "Hello"
        assert await store.events.list_events(run.id, 0) == events
    finally:
        await pool.close()
