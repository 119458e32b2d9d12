"""The database goes away at the worst moments of a run, and the run still completes: during a
step journal write, a cancellation check, a segment's start and its finish. A run whose segment
workflow ended in error anyway is started again by the sweeper, and failed visibly when that
keeps failing. Health and RPCs say UNAVAILABLE meanwhile.

Each test has a PostgreSQL server of its own, which it stops and starts. A write is caught in
flight by a trigger the test installs: it waits on an advisory lock the test holds, and the
test restarts the server while the write waits.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from timestep_client import RunStatus, TimestepClient

from tests.durability.conftest import WAIT, LaunchReplica, ToolProbe, follow_to_stop
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.harness import RestartablePostgres, create_database
from timestep_testing.helpers import collect_events, sequences

# A test's database outage is over in a second or two; recovering from it takes a few retries.
RECOVERY: Final = 60.0
GATE_LOCK: Final = 4242
# How often a test looks at pg_locks for a write waiting on its gate (a condition, polled).
LOCK_POLL_S: Final = 0.02


@pytest.fixture
async def postgres() -> AsyncIterator[RestartablePostgres]:
    # A short path: the server's Unix socket lives in it.
    server = RestartablePostgres(Path(tempfile.mkdtemp(prefix="ts-pg-", dir="/tmp")))
    await server.create()
    try:
        yield server
    finally:
        await server.destroy()


@pytest.fixture
async def durable_database(postgres: RestartablePostgres) -> str:
    """The test's database, on the server the test can restart (dropped with the server)."""
    return await create_database(postgres.dsn, "timestep_outage")


@asynccontextmanager
async def gate_on_status(database: str, status: str) -> AsyncIterator[asyncpg.Connection]:
    """Make every write that sets a run's status to `status` wait (on an advisory lock held by
    the yielded connection, which a database restart releases)."""
    holder = await asyncpg.connect(database)
    await holder.execute(
        f"""CREATE OR REPLACE FUNCTION public.test_gate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_xact_lock({GATE_LOCK}); RETURN NEW; END $$;
            CREATE TRIGGER test_gate BEFORE UPDATE OF status ON public.runs
                FOR EACH ROW WHEN (NEW.status = '{status}') EXECUTE FUNCTION public.test_gate();"""
    )
    await holder.execute("SELECT pg_advisory_lock($1)", GATE_LOCK)
    try:
        yield holder
    finally:
        if not holder.is_closed():
            await holder.close()


async def wait_for_gated_write(holder: asyncpg.Connection) -> None:
    """Wait until a write is waiting on the gate (its transaction is in flight)."""

    async def waiting() -> None:
        query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted"
        while not await holder.fetchval(query, GATE_LOCK):  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(LOCK_POLL_S)

    await asyncio.wait_for(waiting(), WAIT)


async def refuse_status(database: str, status: str, times: int | None) -> None:
    """Make writes setting a run's status to `status` fail (not transiently), `times` times
    (None: always); a sequence counts them, since the failing transactions roll back."""
    connection = await asyncpg.connect(database)
    try:
        limit = "true" if times is None else f"nextval('public.test_refusals') <= {times}"
        await connection.execute(
            f"""CREATE SEQUENCE public.test_refusals;
                CREATE FUNCTION public.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF {limit} THEN RAISE EXCEPTION 'test trigger refuses this status'; END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER test_refuse BEFORE UPDATE OF status ON public.runs
                    FOR EACH ROW WHEN (NEW.status = '{status}') EXECUTE FUNCTION public.test_refuse();"""
        )
    finally:
        await connection.close()


async def assert_completed_once(client: TimestepClient, run_id: str, output: str) -> None:
    """The run completed with `output`, its stored events numbered 1..n without a gap or repeat."""
    events = await follow_to_stop(client, run_id, timeout=RECOVERY)
    final = await client.get_run(run_id)
    assert final.status == RunStatus.RUN_STATUS_COMPLETED, (final, events)
    assert final.final_output == output
    stored = await collect_events(client, run_id, timeout=WAIT)
    assert sequences(stored) == list(range(1, final.last_sequence + 1))


async def test_a_tool_result_is_journaled_once_the_database_is_back(
    launch: LaunchReplica, fake_openai: FakeOpenAI, tools: ToolProbe, postgres: RestartablePostgres
) -> None:
    fake_openai.script(tool_call("slow_task", {"label": "w"}), text("Done."))
    server = await launch("outage-journal")
    async with server.client() as client:
        run = await client.create_run("worker", "Do w.")
        await tools.wait_for("start slow_task w")
        await postgres.stop()
        tools.open_gate("w")  # the tool ends while the database is down: its result waits
        await server.wait_for_output("record_step: database unavailable", WAIT)
        await postgres.start()
        await assert_completed_once(client, run.id, "Done.")

    assert Counter(tools.lines()) == {"start slow_task w": 1, "end slow_task w": 1}
    assert len(fake_openai.requests) == 2, "no model call was repeated"


async def test_a_tool_call_carries_on_while_its_cancellation_check_cannot_reach_the_database(
    launch: LaunchReplica, fake_openai: FakeOpenAI, tools: ToolProbe, postgres: RestartablePostgres
) -> None:
    fake_openai.script(tool_call("slow_task", {"label": "p"}), text("Done."))
    server = await launch("outage-check")
    async with server.client() as client:
        run = await client.create_run("worker", "Do p.")
        await tools.wait_for("start slow_task p")
        await postgres.stop()
        await server.wait_for_output("cannot check for cancellation now", WAIT)
        await postgres.start()
        tools.open_gate("p")
        await assert_completed_once(client, run.id, "Done.")

    assert Counter(tools.lines()) == {"start slow_task p": 1, "end slow_task p": 1}


@pytest.mark.parametrize(("status", "moment"), [("running", "start"), ("completed", "finish")])
async def test_a_segment_survives_a_database_restart_during_its_start_or_finish(
    launch: LaunchReplica,
    fake_openai: FakeOpenAI,
    postgres: RestartablePostgres,
    durable_database: str,
    status: str,
    moment: str,
) -> None:
    fake_openai.script(text("Hello."))
    server = await launch(f"outage-{moment}")
    async with server.client() as client, gate_on_status(durable_database, status) as holder:
        run = await client.create_run("assistant", "Hi")
        await wait_for_gated_write(holder)  # begin_segment / finish_segment is in flight
        await postgres.restart()  # kills it mid-transaction
        await assert_completed_once(client, run.id, "Hello.")
    assert len(fake_openai.requests) == 1, "the model was called once"


async def test_health_and_calls_say_unavailable_while_the_database_is_down(
    launch: LaunchReplica, postgres: RestartablePostgres
) -> None:
    server = await launch("outage-health")
    async with (
        grpc.aio.insecure_channel(server.address) as channel,
        server.client() as client,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service="timestep.v1.RunService"))
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        assert (await watch.read()).status == serving
        await postgres.stop()
        assert (await asyncio.wait_for(watch.read(), WAIT)).status == not_serving
        overall = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert overall.status == not_serving

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.list_runs()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        status = rpc_status.from_call(refused.value)
        assert status is not None
        details = {detail.TypeName(): detail for detail in status.details}
        info = error_details_pb2.ErrorInfo()
        details["google.rpc.ErrorInfo"].Unpack(info)
        assert info.reason == "DATABASE_UNAVAILABLE"
        retry = error_details_pb2.RetryInfo()
        details["google.rpc.RetryInfo"].Unpack(retry)
        assert retry.retry_delay.ToTimedelta().total_seconds() > 0

        await postgres.start()
        assert (await asyncio.wait_for(watch.read(), WAIT)).status == serving
        await asyncio.wait_for(client.list_runs(), WAIT)  # the calls come back by themselves
        watch.cancel()


async def test_a_run_whose_segment_workflow_ended_in_error_is_started_again(
    launch: LaunchReplica, fake_openai: FakeOpenAI, durable_database: str
) -> None:
    fake_openai.script(text("Hello."))
    server = await launch("sweep-recover", "--stranded-grace", "1")
    await refuse_status(durable_database, "running", times=2)
    async with server.client() as client:
        run = await client.create_run("assistant", "Hi")
        await assert_completed_once(client, run.id, "Hello.")
    assert "starting it again (recovery 2 of 3)" in server.log


async def test_a_run_whose_recovery_keeps_failing_fails_visibly(
    launch: LaunchReplica, durable_database: str
) -> None:
    server = await launch("sweep-fail", "--stranded-grace", "1")
    await refuse_status(durable_database, "running", times=None)
    started = time.monotonic()
    async with server.client() as client:
        run = await client.create_run("assistant", "Hi")
        events = await follow_to_stop(client, run.id, timeout=RECOVERY)
        final = await client.get_run(run.id)
    assert final.status == RunStatus.RUN_STATUS_FAILED, (final, events)
    assert final.error.code == "recovery_failed"
    assert "gave up" in final.error.message
    assert time.monotonic() - started < RECOVERY


async def test_replicas_do_not_take_each_others_runs_after_an_outage_longer_than_their_timeout(
    launch: LaunchReplica,
    fake_openai: FakeOpenAI,
    tools: ToolProbe,
    postgres: RestartablePostgres,
    durable_database: str,
) -> None:
    """Every heartbeat is stale after such an outage; a replica that took it for its peer's death
    would run the peer's segment a second time."""
    fake_openai.script(tool_call("slow_task", {"label": "o"}), text("Done."))
    timeout = 2.0
    runner = await launch("outage-peer-a", "--replica-timeout", str(timeout))
    watcher = await launch("outage-peer-b", "--replica-timeout", str(timeout))
    async with runner.client() as client:
        run = await client.create_run("worker", "Do o.")
        await tools.wait_for("start slow_task o")
        await postgres.stop()
        await asyncio.sleep(timeout * 2)  # the outage itself: longer than the replica timeout
        await postgres.start()
        restarted = time.time()
        # Wait for a round of the watcher's after the outage: the round that would claim.
        async with asyncio.timeout(WAIT):
            connection = await asyncpg.connect(durable_database)
            try:
                query = """SELECT count(*) FROM replicas WHERE executor_id = 'outage-peer-b'
                           AND heartbeat_time > to_timestamp($1) + make_interval(secs => $2)"""
                while not await connection.fetchval(query, restarted, timeout + 1):  # noqa: ASYNC110
                    await asyncio.sleep(LOCK_POLL_S)
            finally:
                await connection.close()
        tools.open_gate("o")
        await assert_completed_once(client, run.id, "Done.")

    assert Counter(tools.lines()) == {"start slow_task o": 1, "end slow_task o": 1}
    assert "stopped heartbeating" not in watcher.log + runner.log
