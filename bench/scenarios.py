"""The scenarios. Each runs Timestep and its baseline side by side (alternating where it can, so
both see the same machine) and returns rows of results."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from agents import Runner, RunState, SQLiteSession
from timestep.examples.agents import assistant
from timestep_client import InterruptionStatus, RunStatus, TimestepClient

from bench.environment import Bench, database
from bench.load import load as _load
from bench.memory import memory
from bench.report import Row
from bench.retention import retention
from bench.round_trips import round_trips
from bench.scaling import scaling
from timestep_testing.chaos import soak as chaos_soak
from timestep_testing.chaos import soak_seed
from timestep_testing.harness import FAST_RECONNECT, ServeProcess, free_port

Scenario = Callable[[Bench], Awaitable[list[Row]]]

SDK = "in-process SDK"
NOT_DURABLE = "gRPC, durable=False"
PAIRED = "durable less durable=False, per iteration"


class BenchError(Exception):
    """A run did not end as the scenario expects."""


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


async def _completed(run_status: int, what: str, error: object = "") -> None:
    if run_status != RunStatus.RUN_STATUS_COMPLETED:
        raise BenchError(f"{what} ended {RunStatus.Name(run_status)} {error}")


# ----- 1. HITL cycle ---------------------------------------------------------------------------


async def _hitl_service(client: TimestepClient) -> float:
    start = time.perf_counter()
    run = await client.create_run("assistant", "hitl", wait=True)
    if run.status != RunStatus.RUN_STATUS_INTERRUPTED:
        raise BenchError(f"HITL run ended {RunStatus.Name(run.status)} {run.error}")
    for interruption in run.interruptions:
        if interruption.status == InterruptionStatus.INTERRUPTION_STATUS_PENDING:
            await client.approve(run.id, interruption.id)
    run = await client.resume(run.id, wait=True)
    await _completed(run.status, "resumed HITL run", run.error)
    return _ms(start)


async def _hitl_sdk(bench: Bench) -> float:
    start = time.perf_counter()
    result = await Runner.run(assistant, "hitl", run_config=bench.run_config)
    if not result.interruptions:
        raise BenchError("the in-process HITL run did not pause")
    state = await RunState.from_string(assistant, result.to_state().to_string())
    for interruption in state.get_interruptions():
        state.approve(interruption)
    result = await Runner.run(assistant, state, run_config=bench.run_config)
    if result.final_output != "Sent.":
        raise BenchError(f"the in-process HITL run ended with {result.final_output!r}")
    return _ms(start)


async def hitl(bench: Bench) -> list[Row]:
    durable: list[float] = []
    plain: list[float] = []
    sdk: list[float] = []
    for _ in range(2):  # warm-up
        await _hitl_service(bench.durable_client)
        await _hitl_service(bench.plain_client)
        await _hitl_sdk(bench)
    for _ in range(bench.iterations(40, 3)):
        durable.append(await _hitl_service(bench.durable_client))
        plain.append(await _hitl_service(bench.plain_client))
        sdk.append(await _hitl_sdk(bench))
    return [
        Row("hitl", "HITL cycle, gRPC durable", "ms", durable, SDK, sdk),
        Row("hitl", "HITL cycle, gRPC durable=False", "ms", plain, SDK, sdk),
    ]


# ----- 2. streaming ----------------------------------------------------------------------------


@dataclass
class Stream:
    first_ms: float
    last_ms: float
    tokens: int
    """Words received (the fake model sends one word per delta; the service may merge deltas)."""

    @property
    def tokens_per_s(self) -> float:
        span = (self.last_ms - self.first_ms) / 1000
        return (self.tokens - 1) / span if span > 0 else 0.0


async def _stream_service(client: TimestepClient, words: int) -> Stream:
    start = time.perf_counter()
    run = await client.create_run("assistant", f"long {words}")
    first = last = 0.0
    tokens = 0
    async for event in client.stream_events(run.id):
        if event.HasField("text_delta"):
            last = _ms(start)
            first = first or last
            tokens += len(event.text_delta.delta.split())
    return Stream(first, last, tokens)


async def _stream_sdk(bench: Bench, words: int) -> Stream:
    start = time.perf_counter()
    result = Runner.run_streamed(assistant, f"long {words}", run_config=bench.run_config)
    first = last = 0.0
    tokens = 0
    async for event in result.stream_events():
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
            last = _ms(start)
            first = first or last
            tokens += len(event.data.delta.split())
    return Stream(first, last, tokens)


async def streaming(bench: Bench) -> list[Row]:
    short, long = 50, bench.iterations(2000, 300)
    durable: list[Stream] = []
    plain: list[Stream] = []
    sdk: list[Stream] = []
    for _ in range(2):
        await _stream_service(bench.durable_client, short)
        await _stream_sdk(bench, short)
    for _ in range(bench.iterations(30, 3)):
        durable.append(await _stream_service(bench.durable_client, short))
        plain.append(await _stream_service(bench.plain_client, short))
        sdk.append(await _stream_sdk(bench, short))
    long_durable: list[Stream] = []
    long_sdk: list[Stream] = []
    for _ in range(bench.iterations(5, 1)):
        long_durable.append(await _stream_service(bench.durable_client, long))
        long_sdk.append(await _stream_sdk(bench, long))
    missed = sum(s.tokens != short for s in durable + plain)
    note = f"{missed} streams missed live deltas" if missed else ""
    return [
        Row(
            "streaming",
            "first token, durable",
            "ms",
            [s.first_ms for s in durable],
            SDK,
            [s.first_ms for s in sdk],
            note,
        ),
        Row(
            "streaming",
            "first token, durable=False",
            "ms",
            [s.first_ms for s in plain],
            SDK,
            [s.first_ms for s in sdk],
        ),
        Row(
            "streaming",
            f"last token ({short} tokens), durable",
            "ms",
            [s.last_ms for s in durable],
            SDK,
            [s.last_ms for s in sdk],
        ),
        Row(
            "streaming",
            f"relay throughput ({long} tokens), durable",
            "tokens/s",
            [s.tokens_per_s for s in long_durable],
            SDK,
            [s.tokens_per_s for s in long_sdk],
            "higher is better; tokens received / (last - first token)",
        ),
        Row(
            "streaming",
            f"tokens delivered ({long} streamed), durable",
            "%",
            [100 * s.tokens / long for s in long_durable],
            SDK,
            [100 * s.tokens / long for s in long_sdk],
            "live deltas are at most once: a slow subscriber loses some",
        ),
    ]


# ----- 3. throughput ---------------------------------------------------------------------------


async def throughput(bench: Bench) -> list[Row]:
    # Smoke mode leaves out 100 clients: their runs alone take longer than the whole smoke run may.
    levels = [(1, 3), (10, 1)] if bench.smoke else [(1, 40), (10, 10), (100, 3)]
    target = f"127.0.0.1:{bench.durable.port}"
    rows: list[Row] = []
    for clients, per_client in levels:
        connected = [TimestepClient(target) for _ in range(clients)]
        try:

            async def service_call(index: int, connected: list[TimestepClient] = connected) -> None:
                run = await connected[index].create_run("assistant", "hello", wait=True)
                await _completed(run.status, "run", run.error)

            async def sdk_call(index: int) -> None:
                result = await Runner.run(assistant, "hello", run_config=bench.run_config)
                if not result.final_output:
                    raise BenchError("no final output")

            await _load(clients, 1, service_call)  # connect and warm up
            service = await _load(clients, per_client, service_call)
            sdk = await _load(clients, per_client, sdk_call)
        finally:
            for client in connected:
                await client.close()
        label = f"{clients} client{'s' if clients > 1 else ''}"
        rows += [
            Row("throughput", f"latency, {label}, durable", "ms", service.latencies, SDK, sdk.latencies),
            Row(
                "throughput",
                f"throughput, {label}, durable",
                "runs/s",
                [service.runs_per_s],
                SDK,
                [sdk.runs_per_s],
                "higher is better",
            ),
            Row(
                "throughput",
                f"errors, {label}, durable",
                "runs",
                [float(service.errors)],
                SDK,
                [float(sdk.errors)],
            ),
        ]
    return rows


# ----- 4. durability cost ----------------------------------------------------------------------

# Backends flush their statistics at most once a second when idle (PostgreSQL 15+).
STATS_FLUSH_S = 2.0


async def _db_counters(bench: Bench) -> tuple[float, float]:
    """(transactions committed, rows written) in the benchmark database, from pg_stat_database."""
    async with bench.pool.acquire() as connection:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        record = await connection.fetchrow(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted AS written "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
    assert record is not None
    return float(record["xact_commit"]), float(record["written"])


async def _runs(client: TimestepClient, calls: int, runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        run = await client.create_run("assistant", f"calls {calls}", wait=True)
        timings.append(_ms(start))
        await _completed(run.status, f"{calls}-call run", run.error)
    return timings


async def _idle_rate(bench: Bench, seconds: float) -> tuple[float, float]:
    """Commits and rows written per second while no run is going (queue polling, heartbeats)."""
    await asyncio.sleep(STATS_FLUSH_S)
    commits0, written0 = await _db_counters(bench)
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    commits1, written1 = await _db_counters(bench)
    elapsed = time.perf_counter() - start
    return (commits1 - commits0) / elapsed, (written1 - written0) / elapsed


async def _counted(
    bench: Bench, client: TimestepClient, calls: int, runs: int, idle: tuple[float, float]
) -> tuple[float, float]:
    """Commits and rows written per run, less what the database does meanwhile when idle."""
    await asyncio.sleep(STATS_FLUSH_S)
    commits0, written0 = await _db_counters(bench)
    start = time.perf_counter()
    await _runs(client, calls, runs)
    await asyncio.sleep(STATS_FLUSH_S)
    commits1, written1 = await _db_counters(bench)
    window = time.perf_counter() - start
    commits = (commits1 - commits0) - idle[0] * window
    written = (written1 - written0) - idle[1] * window
    return commits / runs, written / runs


async def _floor(bench: Bench, inserts: int) -> list[float]:
    """A single asyncpg INSERT of a 10 KB JSON row, autocommitted."""
    document = json.dumps({"items": [{"index": index, "text": "x" * 74} for index in range(100)]})
    assert 9_900 <= len(document) <= 10_300, len(document)
    async with bench.pool.acquire() as connection:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, document jsonb NOT NULL)"
        )
        timings = []
        for _ in range(inserts + 5):
            start = time.perf_counter()
            await connection.execute("INSERT INTO bench_floor (document) VALUES ($1::jsonb)", document)
            timings.append(_ms(start))
        await connection.execute("DROP TABLE bench_floor")
    return timings[5:]


async def durability(bench: Bench) -> list[Row]:
    # Ten model calls (nine tool calls) is the most one segment makes (the default max_turns):
    # the more calls, the less a run's noise weighs on the added time per call.
    runs, calls = bench.iterations(30, 3), 10
    one: dict[bool, list[float]] = {True: [], False: []}
    many: dict[bool, list[float]] = {True: [], False: []}
    for durable in (True, False):  # warm-up
        await _runs(bench.durable_client if durable else bench.plain_client, calls, 3)
    for _ in range(runs):
        for durable, client in ((True, bench.durable_client), (False, bench.plain_client)):
            one[durable] += await _runs(client, 1, 1)
            many[durable] += await _runs(client, calls, 1)
    # Paired per iteration (its four runs ran back to back, on the same machine state).
    per_segment = [d1 - p1 for d1, p1 in zip(one[True], one[False], strict=True)]
    per_call = [
        ((dn - d1) - (pn - p1)) / (calls - 1)
        for d1, dn, p1, pn in zip(one[True], many[True], one[False], many[False], strict=True)
    ]
    counted = bench.iterations(20, 3)
    idle = await _idle_rate(bench, bench.iterations(5, 1))
    commits: dict[tuple[bool, int], tuple[float, float]] = {}
    for durable, client in ((True, bench.durable_client), (False, bench.plain_client)):
        for n in (1, calls):
            commits[durable, n] = await _counted(bench, client, n, counted, idle)

    def per_model_call(durable: bool, index: int) -> float:
        return (commits[durable, calls][index] - commits[durable, 1][index]) / (calls - 1)

    floor = _floor(bench, bench.iterations(200, 20))
    floor_ms = await floor
    counters = f"pg_stat_database deltas less the idle rate ({idle[0]:.0f} commits/s)"
    return [
        Row("durability", "run, 1 model call", "ms", one[True], NOT_DURABLE, one[False]),
        Row(
            "durability",
            f"run, {calls} model calls ({calls - 1} tool calls)",
            "ms",
            many[True],
            NOT_DURABLE,
            many[False],
        ),
        Row("durability", "added latency per run segment", "ms", per_segment, note=PAIRED),
        Row("durability", "added latency per model call (+ its tool call)", "ms", per_call, note=PAIRED),
        Row(
            "durability",
            "durable overhead per model call vs 10 KB INSERT",
            "ms",
            per_call,
            "asyncpg INSERT 10 KB jsonb",
            floor_ms,
        ),
        Row(
            "durability",
            "commits per run segment (1 model call)",
            "xacts",
            [commits[True, 1][0]],
            NOT_DURABLE,
            [commits[False, 1][0]],
            counters,
        ),
        Row(
            "durability",
            "commits per extra model call (+ tool call)",
            "xacts",
            [per_model_call(True, 0)],
            NOT_DURABLE,
            [per_model_call(False, 0)],
            counters,
        ),
        Row(
            "durability",
            "rows written per run segment (1 model call)",
            "rows",
            [commits[True, 1][1]],
            NOT_DURABLE,
            [commits[False, 1][1]],
            counters,
        ),
        Row(
            "durability",
            "rows written per extra model call (+ tool call)",
            "rows",
            [per_model_call(True, 1)],
            NOT_DURABLE,
            [per_model_call(False, 1)],
            counters,
        ),
    ]


# ----- 5. growth -------------------------------------------------------------------------------


async def _stored_bytes(bench: Bench) -> int:
    """Bytes of every row of every table (pg_column_size of whole rows; no pages or indexes)."""
    async with bench.pool.acquire() as connection:
        tables = await connection.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        total = 0
        for table in tables:
            name = f'"{table["table_schema"]}"."{table["table_name"]}"'
            total += int(
                await connection.fetchval(f"SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {name} t")
            )
    return total


async def growth(bench: Bench) -> list[Row]:
    turns = bench.iterations(200, 20)
    every = max(1, turns // 10)
    session_id = f"growth-{uuid.uuid4().hex[:8]}"
    sdk_session = SQLiteSession(session_id)
    service_ms: list[float] = []
    sdk_ms: list[float] = []
    sizes: list[tuple[int, int]] = [(0, await _stored_bytes(bench))]
    for turn in range(1, turns + 1):
        start = time.perf_counter()
        run = await bench.durable_client.create_run("assistant", "hello", session_id=session_id, wait=True)
        service_ms.append(_ms(start))
        await _completed(run.status, f"turn {turn}", run.error)
        start = time.perf_counter()
        await Runner.run(assistant, "hello", session=sdk_session, run_config=bench.run_config)
        sdk_ms.append(_ms(start))
        if turn % every == 0:
            sizes.append((turn, await _stored_bytes(bench)))
    per_turn = [(b1 - b0) / (t1 - t0) for (t0, b0), (t1, b1) in itertools.pairwise(sizes)]
    half = len(per_turn) // 2
    tenth = max(1, turns // 10)
    return [
        Row(
            "growth",
            f"time per turn, turns 1-{tenth}",
            "ms",
            service_ms[:tenth],
            SDK + " + SQLiteSession",
            sdk_ms[:tenth],
        ),
        Row(
            "growth",
            f"time per turn, turns {turns - tenth + 1}-{turns}",
            "ms",
            service_ms[-tenth:],
            SDK + " + SQLiteSession",
            sdk_ms[-tenth:],
        ),
        Row(
            "growth",
            "time per turn, last tenth vs first tenth",
            "ms",
            service_ms[-tenth:],
            "turns 1-" + str(tenth),
            service_ms[:tenth],
        ),
        Row(
            "growth",
            "stored bytes per turn, second half",
            "bytes",
            per_turn[half:],
            "first half",
            per_turn[:half],
            f"{sizes[-1][1] - sizes[0][1]} bytes in {turns} turns",
        ),
    ]


# ----- 6. recovery -----------------------------------------------------------------------------


async def _until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:  # noqa: ASYNC109
    deadline = time.perf_counter() + timeout
    while not await condition():
        if time.perf_counter() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def recovery(bench: Bench) -> list[Row]:
    serving_ms: list[float] = []
    resumed_ms: list[float] = []
    completed_ms: list[float] = []
    clean_start_ms: list[float] = []
    async with database("timestep_bench_recovery") as database_url:
        environment = bench.serve_environment(database_url)
        server = ServeProcess("bench-recovery", free_port(), ["--log-level", "WARNING"], environment)
        clean_start_ms.append(await server.start())
        client = TimestepClient(
            channel=grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=FAST_RECONNECT)
        )
        try:
            for _ in range(bench.iterations(5, 1)):
                token = uuid.uuid4().hex
                run = await client.create_run("assistant", f"hold {token}")

                async def arrivals(n: int, token: str = token) -> bool:
                    return len((await bench.fake.stats())["arrivals"].get(token, [])) >= n

                await _until(lambda: arrivals(1), "the held model call")
                await server.end(signal.SIGKILL)
                restarted = time.time()
                serving_ms.append(await server.start())
                await _until(lambda: arrivals(2), "the recovered model call")
                resumed_ms.append(((await bench.fake.stats())["arrivals"][token][1] - restarted) * 1000)

                async def done(run_id: str = run.id) -> bool:
                    try:
                        return (await client.get_run(run_id)).status == RunStatus.RUN_STATUS_COMPLETED
                    except grpc.aio.AioRpcError:
                        return False

                await _until(done, "the recovered run to complete")
                completed_ms.append((time.time() - restarted) * 1000)
                if not bench.smoke:  # a start with nothing to recover, as the baseline
                    await server.end(signal.SIGTERM)
                    clean_start_ms.append(await server.start())
        finally:
            await client.close()
            await server.end(signal.SIGTERM)
    start_baseline = "start with nothing to recover"
    return [
        Row("recovery", "kill -9, restart to serving", "ms", serving_ms, start_baseline, clean_start_ms),
        Row(
            "recovery",
            "kill -9, restart to model call resumed",
            "ms",
            resumed_ms,
            start_baseline,
            clean_start_ms,
        ),
        Row(
            "recovery",
            "kill -9, restart to run completed",
            "ms",
            completed_ms,
            start_baseline,
            clean_start_ms,
        ),
    ]


# ----- 7. chaos soak --------------------------------------------------------------------------


async def soak(bench: Bench) -> list[Row]:
    """The chaos soak of timestep_testing/chaos.py (replicas killed and the database restarted
    under load), its invariants checked, and its figures."""
    seed = soak_seed()
    async with chaos_soak(seed) as world:
        figures = await world.run(bench.iterations(45, 8))
        try:
            await world.check()
        except AssertionError as error:
            raise BenchError(str(error)) from None
    note = f"seed {seed} (TIMESTEP_SOAK_SEED replays it)"
    return [
        Row("soak", "runs, all completed with invariants held", "runs", [figures.runs], note=note),
        Row("soak", "replicas killed (kill -9)", "faults", [figures.kills], note=note),
        Row("soak", "database restarts", "faults", [figures.database_restarts], note=note),
        Row("soak", "time to drain after the load", "ms", [figures.drain_s * 1000], note=note),
        Row("soak", "tool calls run again", "calls", [figures.tool_reruns], note=note),
        Row("soak", "segments restarted by the sweeper", "segments", [figures.sweeper_recoveries], note=note),
    ]


SCENARIOS: dict[str, Scenario] = {
    "hitl": hitl,
    "streaming": streaming,
    "throughput": throughput,
    "durability": durability,
    "growth": growth,
    "recovery": recovery,
    "retention": retention,
    "soak": soak,
    "round_trips": round_trips,
    "memory": memory,
    "scaling": scaling,
}
