"""Pieces the tests and the benchmarks share: throwaway databases, a PostgreSQL server that can
be restarted, free ports, clients that reconnect quickly to a restarted server, commands run to
completion with a timeout, and a scan for leaked secrets."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
import re
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import asyncpg
import grpc
from timestep.store.database import with_database
from timestep_client import TimestepClient

# Reconnect fast once a killed server is back (gRPC's default backoff starts at 1 s and grows).
FAST_RECONNECT: Final = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


REPO: Final = Path(__file__).resolve().parent.parent


def serve_environment(database_dsn: str, openai_base_url: str, openai_api_key: str) -> dict[str, str]:
    """The environment of a `timestep serve` process on `database_dsn` whose OpenAI models are
    the fake at `openai_base_url`: this process's, without any model provider or Timestep
    setting of its own (no HTTP port), and with the repository root on PYTHONPATH (for `--agents` of
    `timestep_testing`)."""
    prefixes = ("OPENAI_", "TIMESTEP_", "OLLAMA_", "FIRECRAWL_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.update(
        PG_CONNECTION_URI=database_dsn,
        OPENAI_API_KEY=openai_api_key,
        OPENAI_BASE_URL=openai_base_url,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        # No HTTP port unless a test asks for one (`--http-port`): 8080 may be taken.
        TIMESTEP_HTTP_PORT="0",
    )
    return env


@dataclass
class ServeProcess:
    """`python -m timestep serve` on a fixed port, restartable with the same executor id and port
    (so a restart recovers its own segments). `args` follow `--port` and `--executor-id`."""

    executor_id: str
    port: int
    args: list[str]
    env: dict[str, str]
    # Starting imports the Agents SDK and DBOS and migrates the database; two cores may be busy.
    startup_timeout_s: float = 60.0
    shutdown_timeout_s: float = 20.0
    process: asyncio.subprocess.Process | None = None
    output: list[str] = field(default_factory=list)
    _drains: list[asyncio.Task[None]] = field(default_factory=list)
    _printed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return "".join(self.output)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> float:
        """Start the process and wait for its "serving on" line; returns the ms that took."""
        assert not self.running, f"{self.executor_id} is running already"
        started = time.perf_counter()
        self.output.append(f"----- start {self.executor_id}\n")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "timestep",
            "serve",
            "--port",
            str(self.port),
            "--executor-id",
            self.executor_id,
            *self.args,
            cwd=REPO,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.process = process
        serving: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        assert process.stdout is not None
        assert process.stderr is not None
        self._drains = [
            asyncio.create_task(self._drain(process.stdout, serving)),
            # The logs, drained all along so the process never blocks on a full pipe.
            asyncio.create_task(self._drain(process.stderr, None)),
        ]
        try:
            await asyncio.wait_for(asyncio.shield(serving), self.startup_timeout_s)
        except TimeoutError:
            raise AssertionError(f"{self.executor_id} did not start serving:\n{self.log}") from None
        return (time.perf_counter() - started) * 1000

    async def _drain(self, stream: asyncio.StreamReader, serving: asyncio.Future[None] | None) -> None:
        while line := (await stream.readline()).decode():
            self.output.append(line)
            self._printed.set()
            if serving is not None and not serving.done() and "serving on" in line:
                serving.set_result(None)
        if serving is not None and not serving.done():
            serving.set_exception(AssertionError(f"{self.executor_id} exited without serving:\n{self.log}"))

    async def wait_for_output(self, text: str, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until the process has printed (logged) `text` since it last started."""

        async def printed() -> None:
            while text not in self.log.rpartition(f"----- start {self.executor_id}\n")[2]:
                self._printed.clear()
                await self._printed.wait()

        try:
            await asyncio.wait_for(printed(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.executor_id} did not print {text!r}:\n{self.log}") from None

    async def end(self, sig: signal.Signals) -> None:
        """Send `sig` (SIGKILL: a crash; SIGTERM: an orderly shutdown) and wait for the exit."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(sig)
        await asyncio.wait_for(process.wait(), self.shutdown_timeout_s)
        await asyncio.wait_for(asyncio.gather(*self._drains, return_exceptions=True), self.shutdown_timeout_s)
        self.output.append(f"----- {self.executor_id} ended ({process.returncode})\n")


def connect(address: str) -> TimestepClient:
    """A client whose channel reconnects within half a second of its server coming back."""
    return TimestepClient(channel=grpc.aio.insecure_channel(address, options=FAST_RECONNECT))


async def run_to_completion(
    *argv: str,
    limit_s: float,
    stdin: str | None = None,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str, str]:
    """Run a command to its end (killed if it outlives `limit_s`): exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), limit_s
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def _execute(server_dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(with_database(server_dsn, "postgres"))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def create_database(server_dsn: str, prefix: str) -> str:
    """A new, empty database on the server of `server_dsn`; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _execute(server_dsn, f'CREATE DATABASE "{name}"')
    return with_database(server_dsn, name)


async def drop_database(database_dsn: str) -> None:
    name = urlsplit(database_dsn).path.lstrip("/")
    await _execute(database_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def temporary_database(server_dsn: str, prefix: str) -> AsyncIterator[str]:
    """A database on the server of `server_dsn`, created for the block and dropped after it."""
    database_dsn = await create_database(server_dsn, prefix)
    try:
        yield database_dsn
    finally:
        await drop_database(database_dsn)


# Long enough runs of base64 to hold a key: DBOS stores workflow and step values pickled, base64-encoded.
_BASE64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
# bytea in a row's text form: \x and hex digits (the backslash doubled inside a quoted field).
_BYTEA = re.compile(r"\\+x((?:[0-9a-f]{2})+)")

_TABLES_SQL = """
SELECT table_schema, table_name FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
"""


def _decoded(text: str) -> bytes:
    """`text` and every bytea value and base64 run in it, decoded, as bytes to search (a
    step result of an older build is pickled bytea)."""
    parts = [text.encode(), *(bytes.fromhex(match.group(1)) for match in _BYTEA.finditer(text))]
    for match in _BASE64.finditer(text):
        padded = match.group() + "=" * (-len(match.group()) % 4)
        try:
            parts.append(base64.b64decode(padded, validate=True))
        except binascii.Error:
            continue
    return b"\n".join(parts)


async def assert_no_secret_anywhere(
    database_dsn: str,
    secrets: Iterable[str],
    *,
    logs: str = "",
    events: Iterable[object] = (),
    kept_in: Iterable[str] = (),
) -> list[str]:
    """Assert that no secret appears in any row of any table of the database (every schema,
    DBOS's included, base64 payloads decoded), in `logs` or in `events` (str() of each), but in
    the tables of `kept_in` ("schema.table"), whose job is to keep it (e.g. a webhook's signing
    secret, which the service needs to sign). Returns the tables scanned, so a caller can check
    the scan covered what it expects."""
    keepers = set(kept_in)
    connection = await asyncpg.connect(database_dsn)
    try:
        tables = [(row[0], row[1]) for row in await connection.fetch(_TABLES_SQL)]
        dumps = {
            f"{schema}.{table}": _decoded(
                await connection.fetchval(
                    f"SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{schema}\".\"{table}\" t"
                )
            )
            for schema, table in tables
        }
    finally:
        await connection.close()
    event_text = "\n".join(str(event) for event in events)
    for secret in secrets:
        assert secret, "an empty secret matches everything"
        leaked = [name for name, dump in dumps.items() if name not in keepers and secret.encode() in dump]
        assert not leaked, f"a secret ({secret[:6]}…) is stored in {leaked}"
        assert secret not in logs, f"a secret ({secret[:6]}…) is in the logs"
        assert secret not in event_text, f"a secret ({secret[:6]}…) is in the events"
    return sorted(dumps)


async def database_fingerprint(database_dsn: str, ignore: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """An md5 of the rows of every table of the database (every schema, DBOS's included), by
    "schema.table". `ignore` names columns per table that change on their own (name each with
    the reason it may be left out)."""
    connection = await asyncpg.connect(database_dsn)
    try:
        tables = [f'"{row[0]}"."{row[1]}"' for row in await connection.fetch(_TABLES_SQL)]
        parts = []
        for table in tables:
            dropped = "".join(f" - '{column}'" for column in ignore.get(table.replace('"', ""), ()))
            parts.append(
                f"SELECT '{table}' AS name, md5(coalesce(string_agg(row, ',' ORDER BY row), '')) AS digest "
                f"FROM (SELECT (to_jsonb(t){dropped})::text AS row FROM {table} t) rows"
            )
        found = await connection.fetch(" UNION ALL ".join(parts))
    finally:
        await connection.close()
    return {row["name"].replace('"', ""): row["digest"] for row in found}


@dataclass
class RestartablePostgres:
    """A PostgreSQL server of the caller's own, in `directory` (the embedded pgserver's
    binaries), that it can stop and start again: a database outage on demand. Without fsync and
    full-page writes (they guard against the machine crashing, not the server), but with
    synchronous commits: a commit acknowledged before an "immediate" stop must survive it."""

    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def _data(self) -> Path:
        return self.directory / "data"

    async def _run(self, binary: str, *args: str) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH

        argv = [str(POSTGRES_BIN_PATH / binary), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            argv = ["runuser", "-u", _postgres_system_user(), "--", *argv]
        code, stdout, stderr = await run_to_completion(*argv, limit_s=120)
        assert code == 0, f"{binary} {' '.join(args)} failed ({code}):\n{stdout}\n{stderr}"

    async def create(self) -> None:
        """Create the cluster (initdb) and start it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, _postgres_system_user())
        await self._run("initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust", "--no-sync")
        await self.start()

    async def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        log = str(self.directory / "postgres.log")
        await self._run("pg_ctl", "-D", str(self._data), "-o", options, "-l", log, "-w", "-t", "60", "start")

    async def stop(self, mode: str = "fast") -> None:
        """Stop: "fast" disconnects every session and shuts down cleanly; "immediate" is a crash."""
        await self._run("pg_ctl", "-D", str(self._data), "-m", mode, "-w", "-t", "60", "stop")

    async def restart(self, mode: str = "fast") -> None:
        await self.stop(mode)
        await self.start()

    async def destroy(self) -> None:
        with contextlib.suppress(AssertionError):
            await self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


def _postgres_system_user() -> str:
    """The system user a root process runs PostgreSQL as (the embedded server's own)."""
    from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"
