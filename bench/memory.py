"""Memory: the resident set of a `timestep serve` process idle, with many runs paused for an
approval, and with many live subscribers (StreamRunEvents and WatchRuns) open.

Paused runs are rows: a process holding a thousand of them should weigh what it weighed idle.
The runs are created in two equal waves, so the second wave's delta is the steady cost per run
(the first one also pays for caches and the allocator's first growth)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator

from timestep_client import RunStatus, TimestepClient

from bench.environment import Bench, database
from bench.processes import rss_bytes
from bench.report import Row
from timestep_testing.harness import ServeProcess, connect, free_port

# Runs created at once, each waiting for its run to pause.
WORKERS = 16
# Live runs the StreamRunEvents subscribers follow (each held in its model call).
HELD_RUNS = 2
# Subscribers per client channel.
STREAMS_PER_CHANNEL = 20

MIB = 1024 * 1024


class RunError(Exception):
    """A run did not pause as the scenario needs."""


async def _pause(client: TimestepClient, count: int, worker: int) -> None:
    for _ in range(worker, count, WORKERS):
        run = await client.create_run("assistant", "hitl", wait=True)
        if run.status != RunStatus.RUN_STATUS_INTERRUPTED:
            raise RunError(f"a HITL run ended {RunStatus.Name(run.status)} {run.error}")


async def _paused_wave(client: TimestepClient, count: int) -> None:
    await asyncio.gather(*(_pause(client, count, worker) for worker in range(WORKERS)))


async def _first_of(stream: AsyncIterator[object], opened: asyncio.Queue[None]) -> None:
    """Read the stream's first message (the server follows from then on), then hold it open."""
    async for _ in stream:
        opened.put_nowait(None)
        break
    await asyncio.Event().wait()


async def _in_model_call(bench: Bench, tokens: list[str]) -> None:
    """Wait until the fake model holds a call of each token's run."""
    async with asyncio.timeout(60):
        while True:
            arrivals = (await bench.fake.stats())["arrivals"]
            if all(arrivals.get(token) for token in tokens):
                return
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _subscribers(address: str, run_ids: list[str], count: int) -> AsyncIterator[None]:
    """`count` subscribers, half following the live `run_ids` (StreamRunEvents), half watching
    every run change (WatchRuns), each open on the server when this yields."""
    channels = [connect(address) for _ in range(-(-count // STREAMS_PER_CHANNEL))]
    opened: asyncio.Queue[None] = asyncio.Queue()
    tasks = []
    for index in range(count):
        client = channels[index // STREAMS_PER_CHANNEL]
        stream: AsyncIterator[object] = (
            client.stream_events(run_ids[index % len(run_ids)]) if index % 2 == 0 else client.watch_runs()
        )
        tasks.append(asyncio.create_task(_first_of(stream, opened)))
    try:
        for _ in range(count):
            await asyncio.wait_for(opened.get(), 60)
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in channels:
            await client.close()


async def memory(bench: Bench) -> list[Row]:
    wave = bench.iterations(500, 10)
    subscribers = bench.iterations(200, 20)
    async with database("timestep_bench_memory") as database_url:
        environment = bench.serve_environment(database_url)
        server = ServeProcess("bench-memory", free_port(), ["--log-level", "WARNING"], environment)
        await server.start()
        assert server.process is not None
        pid = server.process.pid
        client = connect(server.address)
        held: list[str] = []
        try:
            # Warm up every path measured below: a run paused, completed, a stream followed.
            await _paused_wave(client, WORKERS)
            run = await client.create_run("assistant", "hello", wait=True)
            async for _ in client.stream_events(run.id):
                pass
            idle = rss_bytes(pid)
            await _paused_wave(client, wave)
            after_first = rss_bytes(pid)
            await _paused_wave(client, wave)
            after_second = rss_bytes(pid)
            tokens = [uuid.uuid4().hex for _ in range(HELD_RUNS)]
            held = [(await client.create_run("assistant", f"hold {token}")).id for token in tokens]
            await _in_model_call(bench, tokens)
            with_held = rss_bytes(pid)
            async with _subscribers(server.address, held, subscribers):
                with_subscribers = rss_bytes(pid)
            after_subscribers = rss_bytes(pid)
        finally:
            for run_id in held:
                await client.cancel(run_id)
            await client.close()
            await server.end(signal.SIGTERM)

    def mib(value: int) -> list[float]:
        return [value / MIB]

    paused = 2 * wave
    note = f"{paused} paused runs in two waves of {wave}"
    return [
        Row("memory", "RSS idle (after a warm-up)", "MiB", mib(idle)),
        Row("memory", f"RSS with {wave} runs paused", "MiB", mib(after_first), "idle", mib(idle)),
        Row("memory", f"RSS with {paused} runs paused", "MiB", mib(after_second), "idle", mib(idle), note),
        Row(
            "memory",
            "RSS per paused run, second wave",
            "bytes",
            [(after_second - after_first) / wave],
            note="(RSS after the second wave - after the first) / runs in the wave",
        ),
        Row(
            "memory",
            "RSS per paused run, both waves",
            "bytes",
            [(after_second - idle) / paused],
            note="(RSS after both waves - idle) / paused runs",
        ),
        Row(
            "memory",
            f"RSS with {subscribers} live subscribers",
            "MiB",
            mib(with_subscribers),
            f"{HELD_RUNS} live runs followed",
            mib(with_held),
            f"half StreamRunEvents on {HELD_RUNS} live runs, half WatchRuns",
        ),
        Row(
            "memory",
            "RSS per live subscriber",
            "bytes",
            [(with_subscribers - with_held) / subscribers],
            note="RSS with the subscribers open less with the live runs alone, per subscriber",
        ),
        Row(
            "memory",
            "RSS after the subscribers closed",
            "MiB",
            mib(after_subscribers),
            "idle",
            mib(idle),
        ),
    ]
