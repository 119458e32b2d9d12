"""Retention: many runs created and expired under `--retention` on a service of their own; the
rows stored (every table, DBOS's included) return to their starting size once the sweeps have
deleted them, and the disk the tables take stops growing: after a VACUUM (which autovacuum runs
on its own schedule) a second wave reuses the first one's space."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from dataclasses import dataclass

import asyncpg
import grpc
from timestep_client import RunStatus, TimestepClient

from bench.environment import Bench, database
from bench.report import Row
from timestep_testing.harness import FAST_RECONNECT, ServeProcess, free_port

# Runs created at once (each waits for its run to complete).
WORKERS = 16
# Runs per session: sessions' items expire with their runs.
RUNS_PER_SESSION = 10
# (age, sweep interval): a full run's, a smoke run's.
POLICY = {False: ("20s", "5s"), True: ("2s", "1s")}

_TABLES = (
    "SELECT table_schema, table_name FROM information_schema.tables "
    "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
)


@dataclass(frozen=True)
class Sizes:
    """Bytes of the rows of each table, and on disk (tables with their indexes) in all."""

    rows: dict[str, int]
    disk: int

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def grown(self, start: Sizes) -> str:
        """The tables holding more row bytes than at `start`, and how many more."""
        grown = {name: size - start.rows.get(name, 0) for name, size in self.rows.items()}
        return ", ".join(f"{name} +{more}" for name, more in sorted(grown.items()) if more > 0) or "none"


async def _sizes(database_url: str) -> Sizes:
    connection = await asyncpg.connect(database_url)
    try:
        rows, disk = {}, 0
        for table in await connection.fetch(_TABLES):
            name = f'"{table["table_schema"]}"."{table["table_name"]}"'
            rows[name.replace('"', "")] = int(
                await connection.fetchval(f"SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {name} t")
            )
            disk += int(await connection.fetchval(f"SELECT pg_total_relation_size('{name}')"))
        return Sizes(rows, disk)
    finally:
        await connection.close()


async def _runs_left(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM runs"))
    finally:
        await connection.close()


async def _create(client: TimestepClient, count: int, worker: int, prefix: str) -> None:
    for n in range(worker, count, WORKERS):
        run = await client.create_run(
            "assistant", "hello", session_id=f"{prefix}-{n // RUNS_PER_SESSION}", wait=True
        )
        if run.status != RunStatus.RUN_STATUS_COMPLETED:
            raise RuntimeError(f"run {n} ended {RunStatus.Name(run.status)}")


async def _wave(client: TimestepClient, database_url: str, count: int) -> tuple[float, float, int]:
    """Create `count` runs, then wait until retention has deleted them all: (seconds creating,
    seconds until all were deleted, peak bytes of rows seen)."""
    prefix = uuid.uuid4().hex[:8]
    start = time.perf_counter()
    await asyncio.gather(*(_create(client, count, worker, prefix) for worker in range(WORKERS)))
    created = time.perf_counter() - start
    peak = (await _sizes(database_url)).total
    await _all_expired(database_url)
    expired = time.perf_counter() - start
    # What autovacuum does on its own schedule, now: the deleted rows' space becomes reusable.
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("VACUUM")
    finally:
        await connection.close()
    return created, expired, peak


async def _all_expired(database_url: str, timeout: float = 600) -> None:  # noqa: ASYNC109
    """Wait until retention has deleted every run (the sweeps announce nothing: ask every second)."""
    deadline = time.perf_counter() + timeout
    while await _runs_left(database_url):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"retention did not delete the runs within {timeout} s")
        await asyncio.sleep(1)


async def retention(bench: Bench) -> list[Row]:
    count = bench.iterations(10_000, 50)
    age, every = POLICY[bench.smoke]
    flags = ["--retention", age, "--retention-sweep-every", every, "--retention-batch", "2000"]
    async with database("timestep_bench_retention") as database_url:
        environment = bench.serve_environment(database_url)
        server = ServeProcess("bench-retention", free_port(), ["--log-level", "WARNING", *flags], environment)
        await server.start()
        client = TimestepClient(channel=grpc.aio.insecure_channel(server.address, options=FAST_RECONNECT))
        try:
            await client.create_run("assistant", "hello", wait=True)  # warm-up (expires too)
            await _all_expired(database_url)
            start = await _sizes(database_url)
            created_s, expired_s, peak = await _wave(client, database_url, count)
            first = await _sizes(database_url)
            # A smaller second wave: enough to show whether the first one's space is reused.
            await _wave(client, database_url, bench.iterations(count // 10, count))
            second = await _sizes(database_url)
        finally:
            await client.close()
            await server.end(signal.SIGTERM)
    note = f"{count} runs ({count // RUNS_PER_SESSION} sessions), --retention {age}, a sweep every {every}"
    start_note = "at the start"
    return [
        Row("retention", "runs created per second", "runs/s", [count / created_s], note=note),
        Row("retention", "seconds until every run was deleted", "s", [expired_s], note=note),
        Row("retention", "stored row bytes at the peak", "bytes", [peak], start_note, [start.total], note),
        Row(
            "retention",
            "stored row bytes after the sweeps",
            "bytes",
            [first.total],
            start_note,
            [start.total],
            f"grown: {first.grown(start)}",
        ),
        Row(
            "retention",
            "stored row bytes after a second wave",
            "bytes",
            [second.total],
            start_note,
            [start.total],
            f"grown: {second.grown(start)}",
        ),
        Row("retention", "disk bytes after the first wave", "bytes", [first.disk], start_note, [start.disk]),
        Row(
            "retention",
            "disk bytes after a second wave",
            "bytes",
            [second.disk],
            "after the first",
            [first.disk],
        ),
    ]
