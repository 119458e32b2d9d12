"""Schema migrations on real PostgreSQL databases created (and dropped) by these tests.

Which migrations exist is read from `available_migrations()`, never listed here: adding one
must not require editing these tests (unless it breaks what they check).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import timestep.store.migrations
from asyncpg.pool import PoolConnectionProxy
from timestep.domain import InterruptionStatus, RunStatus
from timestep.runs.apply import RunTransitions
from timestep.scope import Scope
from timestep.store.database import open_pool, with_database
from timestep.store.migrations import available_migrations, migrate
from timestep.store.runs import RunStore

# Tables the store reads and writes: whatever the migrations are, they must leave these.
REQUIRED_TABLES = {
    "runs",
    "run_events",
    "interruptions",
    "run_state_snapshots",
    "run_usage",
    "model_calls",
    "tool_invocations",
    "replicas",
    "session_items",
    "saved_run_states",
    "step_journal",
    "schema_migrations",
}

_CREATE_TABLE = re.compile(r"^\s*CREATE TABLE (?:IF NOT EXISTS )?(\w+)", re.IGNORECASE | re.MULTILINE)
_DROP_TABLE = re.compile(r"^\s*DROP TABLE (?:IF EXISTS )?(\w+)", re.IGNORECASE | re.MULTILINE)


def expected_tables() -> set[str]:
    """The tables the available migrations leave, plus the one `migrate` keeps its records in."""
    tables = {"schema_migrations"}
    for migration in available_migrations():
        tables |= set(_CREATE_TABLE.findall(migration.sql))
        tables -= set(_DROP_TABLE.findall(migration.sql))
    return tables


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
    assert all(migration.name and migration.sql.strip() for migration in available_migrations())


def test_the_migrations_create_every_table_the_store_uses() -> None:
    assert expected_tables() >= REQUIRED_TABLES


async def test_migrate_applies_once_then_nothing(fresh_database: str) -> None:
    every_version = [migration.version for migration in available_migrations()]
    connection = await asyncpg.connect(fresh_database)
    try:
        assert await public_tables(connection) == set()

        assert await migrate(connection) == every_version
        assert await public_tables(connection) == expected_tables()
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
        assert await public_tables(connections[0]) == expected_tables()
        versions = await connections[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [row["version"] for row in versions] == every_version
    finally:
        for connection in connections:
            await connection.close()


async def test_open_pool_migrates_and_concurrent_opens_agree(fresh_database: str) -> None:
    pools = await asyncio.gather(*(open_pool(fresh_database, max_size=2) for _ in range(3)))
    try:
        async with pools[0].acquire() as connection:
            assert await public_tables(connection) == expected_tables()
            count = await connection.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(available_migrations())
        # The pool's connections decode jsonb as Python values.
        assert await pools[1].fetchval("""SELECT '{"a": [1, 2]}'::jsonb""") == {"a": [1, 2]}
    finally:
        for pool in pools:
            await pool.close()


async def test_migrating_an_older_database_applies_only_the_newer_migrations_and_keeps_its_runs(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, *later = available_migrations()
    assert later, "there is no newer migration to upgrade to"
    connection = await asyncpg.connect(fresh_database)
    try:
        with monkeypatch.context() as only_the_first:
            only_the_first.setattr(timestep.store.migrations, "available_migrations", lambda: [first])
            assert await migrate(connection) == [first.version]
        # A run paused on an approval, written by a version of the service that knew only the
        # first migration.
        await connection.execute(
            """INSERT INTO runs (id, agent, current_agent, status, input, segment_count, last_sequence)
               VALUES ('run_old', 'assistant', 'assistant', 'interrupted', '"Hi"', 1, 1);
               INSERT INTO run_events (run_id, sequence, segment, kind, payload)
               VALUES ('run_old', 1, 1, 'status_changed', '{"status": "interrupted", "reason": ""}');
               INSERT INTO interruptions (id, run_id, segment, agent, tool_name, call_id, arguments_json,
                                          status)
               VALUES ('int_old', 'run_old', 1, 'assistant', 'send_email', 'call_1', '{}', 'pending');"""
        )

        assert await migrate(connection) == [migration.version for migration in later]
        assert await public_tables(connection) == expected_tables()
    finally:
        await connection.close()

    # The current store reads the old run and takes it on from where it paused.
    pool = await open_pool(fresh_database, max_size=2)
    try:
        store = RunStore(pool)
        run = await store.get_run(Scope.ALL, "run_old")
        assert (run.status, run.segment_count, run.last_sequence) == (RunStatus.INTERRUPTED, 1, 1)
        assert [i.id for i in run.pending_interruptions] == ["int_old"]
        assert (await store.segment_start("run_old", 1))[1] == "Hi"
        await RunTransitions(store).decide_interruption(
            Scope.ALL, "run_old", "int_old", InterruptionStatus.APPROVED, always=False, message=""
        )
        queued, _ = await RunTransitions(store).queue_resume(Scope.ALL, "run_old", "openai")
        assert (queued.status, queued.segment_count, queued.queue_name) == (RunStatus.QUEUED, 2, "openai")
        assert [e.sequence for e in await store.events.list_events("run_old", 0)] == [1, 2, 3]
    finally:
        await pool.close()
