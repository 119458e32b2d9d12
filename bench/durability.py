"""What durability costs: the same runs against the same fake model server, durable (each
segment a DBOS workflow, each model and tool call a recorded step) and not durable.

    python -m bench.durability [--runs 30] [--calls 5]

Prints the median latency of a one-model-call run and of a run whose segment makes `--calls`
model calls (tool calls in between), in both modes, and derives the added latency per segment
and per model call. It creates and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass

import asyncpg
from timestep.app import ServiceConfig, TimestepService
from timestep.runtime.providers import ModelConfig
from timestep.store.database import resolve_server, with_database
from timestep_client import RunStatus, TimestepClient

from tests.fakes.openai_responses import FakeOpenAI, text, tool_call


@dataclass(frozen=True)
class Figures:
    one_call_ms: float
    many_calls_ms: float


async def _timed_runs(client: TimestepClient, fake: FakeOpenAI, runs: int, calls: int) -> list[float]:
    timings = []
    for _ in range(runs):
        fake.script(*[tool_call("get_weather", {"city": "Paris"}) for _ in range(calls - 1)], text("Done."))
        start = time.perf_counter()
        run = await client.create_run("assistant", "Weather?", wait=True)
        timings.append((time.perf_counter() - start) * 1000)
        assert run.status == RunStatus.RUN_STATUS_COMPLETED, run.error
    return timings


async def measure(database_url: str, fake: FakeOpenAI, *, durable: bool, runs: int, calls: int) -> Figures:
    config = ServiceConfig(
        port=0, database_url=database_url, durable=durable, executor_id=f"bench-{uuid.uuid4().hex[:6]}"
    )
    model_config = ModelConfig(openai_api_key="bench", openai_base_url=fake.base_url)
    service = await TimestepService.start(config, model_config=model_config)
    try:
        async with TimestepClient(f"127.0.0.1:{service.port}") as client:
            await _timed_runs(client, fake, 3, calls)  # warm up connections and caches
            one = await _timed_runs(client, fake, runs, 1)
            many = await _timed_runs(client, fake, runs, calls)
    finally:
        await service.stop(grace=1)
    return Figures(statistics.median(one), statistics.median(many))


async def main(runs: int, calls: int) -> None:
    admin = (await resolve_server()).dsn
    name = f"timestep_bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(admin)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    try:
        async with FakeOpenAI(keep_alive=True) as fake:
            database_url = with_database(admin, name)
            durable = await measure(database_url, fake, durable=True, runs=runs, calls=calls)
            plain = await measure(database_url, fake, durable=False, runs=runs, calls=calls)
    finally:
        connection = await asyncpg.connect(admin)
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()
    per_segment = durable.one_call_ms - plain.one_call_ms
    per_call = ((durable.many_calls_ms - durable.one_call_ms) - (plain.many_calls_ms - plain.one_call_ms)) / (
        calls - 1
    )
    print(
        f"median of {runs} runs each; a {calls}-call segment has {calls - 1} tool calls between model calls"
    )
    print(f"{'':28}{'durable':>10}{'not durable':>13}{'added':>9}")
    print(
        f"{'run, 1 model call (ms)':28}{durable.one_call_ms:10.1f}{plain.one_call_ms:13.1f}{per_segment:9.1f}"
    )
    many_label = f"run, {calls} model calls (ms)"
    added_many = durable.many_calls_ms - plain.many_calls_ms
    print(f"{many_label:28}{durable.many_calls_ms:10.1f}{plain.many_calls_ms:13.1f}{added_many:9.1f}")
    print(f"added per run segment: {per_segment:.1f} ms")
    print(f"added per model call (with its tool call): {per_call:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per measurement (default: %(default)s)")
    parser.add_argument(
        "--calls", type=int, default=5, help="model calls in the long segment (default: %(default)s)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.calls))
