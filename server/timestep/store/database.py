"""Finding, creating and connecting to the service's PostgreSQL database.

Resolution order (the first that applies wins):
1. `PG_CONNECTION_URI`, used as given.
2. A PostgreSQL server answering on localhost:5432 (user `postgres` unless `PGUSER` says
   otherwise): the service uses (and creates if needed) a database named `timestep` there.
3. An embedded PostgreSQL (PyPI `pgserver`) in a data directory the service owns, so the
   service starts on a machine with no database set up at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from timestep.store import content
from timestep.store.migrations import migrate

log = logging.getLogger(__name__)

DEFAULT_DATABASE_NAME = "timestep"
LOCAL_SERVER = ("127.0.0.1", 5432)
LOCAL_PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class DatabaseTarget:
    dsn: str
    # Where the database came from, for the startup log: "PG_CONNECTION_URI", "localhost", "embedded".
    source: str


def default_data_dir() -> Path:
    configured = os.environ.get("TIMESTEP_DATA_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "timestep"


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials as `dsn`, another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def redact(dsn: str) -> str:
    """The DSN without its password, for logs."""
    parts = urlsplit(dsn)
    if not parts.password:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def ensure_database_exists(admin_dsn: str, database: str) -> None:
    connection = await asyncpg.connect(admin_dsn)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            # Another replica may create it at the same moment.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()


async def _local_server_admin_dsn() -> str | None:
    host, port = LOCAL_SERVER
    user = os.environ.get("PGUSER", "postgres")
    admin_dsn = f"postgresql://{user}@{host}:{port}/postgres"
    try:
        connection = await asyncpg.connect(admin_dsn, timeout=LOCAL_PROBE_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        log.info("no usable PostgreSQL on %s:%s (%s)", host, port, error)
        return None
    await connection.close()
    return admin_dsn


def _start_embedded_server(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL in `data_dir`; returns its admin DSN."""
    import pgserver  # imported here: it is only needed when no other database is available

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")  # type: ignore[attr-defined]
    uri: str = server.get_uri()
    return uri


async def resolve_server() -> DatabaseTarget:
    """The PostgreSQL server to use, as a DSN of its maintenance database ("postgres")."""
    explicit = os.environ.get("PG_CONNECTION_URI")
    if explicit:
        return DatabaseTarget(with_database(explicit, "postgres"), "PG_CONNECTION_URI")
    local = await _local_server_admin_dsn()
    if local:
        return DatabaseTarget(local, "localhost")
    data_dir = default_data_dir()
    log.info("starting embedded PostgreSQL in %s", data_dir)
    return DatabaseTarget(await asyncio.to_thread(_start_embedded_server, data_dir), "embedded")


async def resolve_database() -> DatabaseTarget:
    """The service's database: PG_CONNECTION_URI as given, else "timestep" on the resolved server."""
    explicit = os.environ.get("PG_CONNECTION_URI")
    if explicit:
        return DatabaseTarget(explicit, "PG_CONNECTION_URI")
    server = await resolve_server()
    await ensure_database_exists(server.dsn, DEFAULT_DATABASE_NAME)
    return DatabaseTarget(with_database(server.dsn, DEFAULT_DATABASE_NAME), server.source)


async def _init_connection(connection: asyncpg.Connection) -> None:
    """Every string goes in and out through the reversible escape of `timestep.store.content`,
    so NUL and lone surrogates are stored like any other text (`text[]` parameters are not
    reached by the `text` codec: pass them through `content.escape_texts`)."""
    await connection.set_type_codec(
        "text", encoder=content.escape, decoder=content.unescape, schema="pg_catalog", format="text"
    )
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type, encoder=content.encode_json, decoder=content.decode_json, schema="pg_catalog"
        )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Reset nothing when a connection goes back to the pool. asyncpg's default reset (unlock
    advisory locks, close cursors, UNLISTEN, RESET ALL) is a round trip per release, and the store
    leaves no such state: transaction-scoped locks only, no cursors outside transactions, no
    LISTEN (the relay listens on a connection of its own), no SET. asyncpg still rolls back a
    transaction left open."""


async def open_pool(dsn: str, *, max_size: int = 10) -> asyncpg.Pool:
    """A connection pool on a migrated database."""
    connection = await asyncpg.connect(dsn)
    try:
        applied = await migrate(connection)
        if applied:
            log.info("applied migrations %s", applied)
    finally:
        await connection.close()
    pool: Any = await asyncpg.create_pool(
        dsn, min_size=1, max_size=max_size, init=_init_connection, reset=_keep_session
    )
    return pool  # type: ignore[no-any-return]


_shared_pools: dict[int, asyncpg.Pool] = {}


async def shared_pool() -> asyncpg.Pool:
    """One pool per event loop for library users (RunStateStore, PostgresSession) without their own."""
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _shared_pools:
        target = await resolve_database()
        log.info("using %s database %s", target.source, redact(target.dsn))
        _shared_pools[loop_id] = await open_pool(target.dsn)
    return _shared_pools[loop_id]
