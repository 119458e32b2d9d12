"""Scaling: throughput at a fixed concurrency with 1, 2 and 4 `timestep serve` processes on one
database (clients spread round-robin over their ports), against the in-process SDK run in as
many processes (`bench.sdk_worker`, the clients split evenly between them), and who spends the
CPU: the service processes, the database server, the fake model and the clients.

The database is on a PostgreSQL server of the scenario's own (`RestartablePostgres`: 200
connections, no fsync), so that all of that server's CPU is the scenario's, and four service
processes (each up to 10 connections of its own and DBOS's pool of up to 20) fit in it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from timestep_client import RunStatus, TimestepClient

from bench.environment import REPO, Bench
from bench.load import Load, load
from bench.processes import CpuWindow
from bench.report import Row
from timestep_testing.harness import RestartablePostgres, ServeProcess, create_database, free_port

SDK_PROCESSES = "in-process SDK, as many processes"


class RunError(Exception):
    """A run did not complete."""


async def _service_load(
    bench: Bench, servers: list[ServeProcess], clients: int, per_client: int, postmaster: int
) -> tuple[Load, CpuWindow]:
    connected = [TimestepClient(servers[index % len(servers)].address) for index in range(clients)]

    async def call(index: int) -> None:
        run = await connected[index].create_run("assistant", "hello", wait=True)
        if run.status != RunStatus.RUN_STATUS_COMPLETED:
            raise RunError(f"a run ended {RunStatus.Name(run.status)} {run.error}")

    assert bench.fake.process is not None
    window = CpuWindow(
        {
            "service": [server.process.pid for server in servers if server.process is not None],
            "fake model": [bench.fake.process.pid],
            "clients": [os.getpid()],
        },
        postmaster,
    )
    try:
        await load(clients, 1, call)  # connect and warm up
        window.start()
        found = await load(clients, per_client, call)
        window.stop()
    finally:
        for client in connected:
            await client.close()
    return found, window


async def _sdk_load(bench: Bench, processes: int, clients: int, per_client: int) -> tuple[Load, CpuWindow]:
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.sdk_worker",
            bench.fake.base_url,
            str(clients // processes),
            str(per_client),
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    assert bench.fake.process is not None
    window = CpuWindow(
        {"SDK processes": [worker.pid for worker in workers], "fake model": [bench.fake.process.pid]}
    )
    found = Load()
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), 120)
            if line.strip() != b"ready":
                raise RunError(f"an SDK worker did not start: {line!r}")
        window.start()
        start = time.perf_counter()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        for worker in workers:
            assert worker.stdout is not None
            result = json.loads(await asyncio.wait_for(worker.stdout.readline(), 300))
            found.latencies += result["latencies"]
            found.errors += result["errors"]
        found.elapsed_s = time.perf_counter() - start
        window.stop()
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.terminate()
            await worker.wait()
    return found, window


def _cpu_ms_per_run(window: CpuWindow, found: Load) -> float:
    assert window.spent is not None
    return 1000 * sum(window.spent.values()) / max(1, len(found.latencies))


async def scaling(bench: Bench) -> list[Row]:
    clients, per_client = bench.iterations(100, 8), bench.iterations(3, 1)
    levels = (2,) if bench.smoke else (1, 2, 4)
    rows: list[Row] = []
    postgres = RestartablePostgres(Path(tempfile.mkdtemp(prefix="ts-bench-pg-", dir="/tmp")))
    await postgres.create()
    try:
        database_url = await create_database(postgres.dsn, "timestep_bench_scaling")
        postmaster = int((postgres.directory / "data" / "postmaster.pid").read_text().split()[0])
        environment = bench.serve_environment(database_url)
        servers: list[ServeProcess] = []
        try:
            for processes in levels:
                added = [
                    ServeProcess(
                        f"bench-scaling-{index}", free_port(), ["--log-level", "WARNING"], environment
                    )
                    for index in range(len(servers), processes)
                ]
                await asyncio.gather(*(server.start() for server in added))
                servers += added
                service, service_cpu = await _service_load(bench, servers, clients, per_client, postmaster)
                sdk, sdk_cpu = await _sdk_load(bench, processes, clients, per_client)
                label = f"{clients} clients, {processes} process{'es' if processes > 1 else ''}"
                spent = service_cpu.spent or {}
                shares = service_cpu.shares()
                cpu_note = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in spent.items())
                rows += [
                    Row(
                        "scaling",
                        f"throughput, {label}",
                        "runs/s",
                        [service.runs_per_s],
                        SDK_PROCESSES,
                        [sdk.runs_per_s],
                        "higher is better",
                    ),
                    Row(
                        "scaling", f"latency, {label}", "ms", service.latencies, SDK_PROCESSES, sdk.latencies
                    ),
                    Row(
                        "scaling",
                        f"errors, {label}",
                        "runs",
                        [float(service.errors)],
                        SDK_PROCESSES,
                        [float(sdk.errors)],
                    ),
                    Row(
                        "scaling",
                        f"CPU per run, {label}",
                        "ms",
                        [_cpu_ms_per_run(service_cpu, service)],
                        SDK_PROCESSES,
                        [_cpu_ms_per_run(sdk_cpu, sdk)],
                        "CPU time of every process involved (clients included) / runs",
                    ),
                    *(
                        Row("scaling", f"CPU share, {name}, {label}", "%", [100 * share], note=cpu_note)
                        for name, share in shares.items()
                    ),
                ]
        finally:
            await asyncio.gather(*(server.end(signal.SIGTERM) for server in servers), return_exceptions=True)
    finally:
        await postgres.destroy()
    return rows
