"""Schema migrations on real PostgreSQL databases created (and dropped) by these tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from asyncpg.pool import PoolConnectionProxy
from timestep.store.database import open_pool, with_database
from timestep.store.migrations import available_migrations, migrate

EXPECTED_TABLES = {
    "runs",
    "run_events",
    "interruptions",
    "run_state_snapshots",
    "run_usage",
    "model_calls",
    "session_items",
    "saved_run_states",
    "schema_migrations",
}


@pytest.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """The DSN of an empty database that exists only for this test."""
    admin = await asyncpg.connect(with_database(database_url, "postgres"))
    name = f"timestep_migrate_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def public_tables(connection: asyncpg.Connection | PoolConnectionProxy) -> set[str]:
    rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


def test_migrations_are_numbered_in_order() -> None:
    versions = [migration.version for migration in available_migrations()]

    assert versions
    assert versions == sorted(set(versions))
    assert available_migrations()[0].name == "initial"


async def test_migrate_applies_once_then_nothing(fresh_database: str) -> None:
    every_version = [migration.version for migration in available_migrations()]
    connection = await asyncpg.connect(fresh_database)
    try:
        assert await public_tables(connection) == set()

        assert await migrate(connection) == every_version
        assert await public_tables(connection) == EXPECTED_TABLES
        recorded = await connection.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in recorded] == [
            (m.version, m.name) for m in available_migrations()
        ]

        assert await migrate(connection) == []
        assert await connection.fetchval("SELECT count(*) FROM schema_migrations") == len(every_version)
    finally:
        await connection.close()


async def test_concurrent_migrate_on_a_fresh_database_is_safe(fresh_database: str) -> None:
    every_version = [migration.version for migration in available_migrations()]
    connections = [await asyncpg.connect(fresh_database) for _ in range(6)]
    try:
        results = await asyncio.gather(*(migrate(connection) for connection in connections))

        assert sorted(results, key=len, reverse=True) == [every_version] + [[]] * (len(connections) - 1)
        assert await public_tables(connections[0]) == EXPECTED_TABLES
        versions = await connections[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [row["version"] for row in versions] == every_version
    finally:
        for connection in connections:
            await connection.close()


async def test_open_pool_migrates_and_concurrent_opens_agree(fresh_database: str) -> None:
    pools = await asyncio.gather(*(open_pool(fresh_database, max_size=2) for _ in range(3)))
    try:
        async with pools[0].acquire() as connection:
            assert await public_tables(connection) == EXPECTED_TABLES
            count = await connection.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(available_migrations())
        # The pool's connections decode jsonb as Python values.
        assert await pools[1].fetchval("""SELECT '{"a": [1, 2]}'::jsonb""") == {"a": [1, 2]}
    finally:
        for pool in pools:
            await pool.close()
