"""Transport limits, enforced by gRPC in front of the servicers: message size, metadata size and
concurrent streams per connection; page sizes above the maximum, which are clamped; and the
number of active runs per tenant, beyond which calls are told when to retry.

Content limits (input items, state size) are cases of the table in test_errors.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from timestep.app import TimestepService
from timestep.runtime.providers import ModelConfig
from timestep.settings import Limits
from timestep_client import RunStatus, TimestepClient
from timestep_client.v1 import agents_pb2, runs_pb2

from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, gate, text
from timestep_testing.helpers import (
    WAIT,
    collect_events,
    db_state,
    expect_rpc_error,
    tenant_keys,
    unique,
)

MAX_MESSAGE_BYTES: Final = Limits().max_message_bytes
MAX_METADATA_BYTES: Final = Limits().max_metadata_bytes
# Channels of one process to one address share a connection unless told otherwise.
BUSY_KEY: Final = "ts_busy-tenant-key-5f1e2d3c4b5a"
OTHER_KEY: Final = "ts_other-tenant-key-a1b2c3d4e5f6"
OWN_CONNECTION: Final = [("grpc.use_local_subchannel_pool", 1)]


async def test_a_message_over_the_size_limit_is_resource_exhausted_and_writes_nothing(
    client: TimestepClient, fake_openai: FakeOpenAI, database_url: str
) -> None:
    before = await db_state(database_url)

    error = await expect_rpc_error(
        client.create_run("assistant", "x" * (MAX_MESSAGE_BYTES + 1), timeout=WAIT),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )

    assert "message larger than max" in (error.details() or "").lower()
    assert await db_state(database_url) == before
    assert fake_openai.requests == []
    # A message under the limit (and over gRPC's default of 4 MiB) reaches the servicer.
    large_state = runs_pb2.ImportRunStateRequest(agent="nobody", state_json="x" * (MAX_MESSAGE_BYTES // 2))
    await expect_rpc_error(client.runs.ImportRunState(large_state, timeout=WAIT), grpc.StatusCode.NOT_FOUND)


async def test_metadata_over_the_size_limit_is_refused(client: TimestepClient) -> None:
    call = client.agents.ListAgents(
        agents_pb2.ListAgentsRequest(), metadata=[("x-padding", "x" * MAX_METADATA_BYTES)], timeout=WAIT
    )

    error = await expect_rpc_error(call, grpc.StatusCode.RESOURCE_EXHAUSTED)

    assert "metadata" in (error.details() or "").lower()
    assert len(await client.list_agents()) == 2, "the service still answers"


@pytest.fixture
async def two_streams_service(
    start_service: StartService, model_config: ModelConfig
) -> AsyncIterator[TimestepService]:
    async with start_service(model_config, limits=Limits(max_concurrent_streams=2)) as running:
        yield running


async def test_streams_beyond_the_per_connection_limit_wait_for_a_free_one(
    two_streams_service: TimestepService,
) -> None:
    address = f"127.0.0.1:{two_streams_service.port}"
    channel = grpc.aio.insecure_channel(address, options=OWN_CONNECTION)
    health = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="")
    # Health.Watch stays open until cancelled: each holds one stream of the connection.
    watches: list[Any] = [health.Watch(request) for _ in range(3)]
    try:
        reads = {asyncio.ensure_future(watch.read()): watch for watch in watches}
        serving = health_pb2.HealthCheckResponse.SERVING
        # gRPC starts queued calls in no particular order: any two get a stream.
        opened: set[asyncio.Future[Any]] = set()
        while len(opened) < 2:
            done, _ = await asyncio.wait(
                set(reads) - opened, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED
            )
            assert done, f"only {len(opened)} of 3 streams opened within {WAIT}s"
            opened |= done
        assert [read.result().status for read in opened] == [serving] * 2
        [waiting] = set(reads) - opened
        # The third waits for a stream; another connection is served meanwhile.
        async with TimestepClient(
            channel=grpc.aio.insecure_channel(address, options=OWN_CONNECTION)
        ) as other:
            assert len(await asyncio.wait_for(other.list_agents(), WAIT)) == 2
        assert not waiting.done(), "a third stream was opened beyond max_concurrent_streams=2"

        reads[next(iter(opened))].cancel()

        assert (await asyncio.wait_for(waiting, WAIT)).status == serving
    finally:
        for watch in watches:
            watch.cancel()
        await channel.close()


async def test_a_page_size_above_the_maximum_is_clamped(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("session")
    for _ in range(2):
        fake_openai.script(text("Hello!"))
        await client.create_run("assistant", "Hi", session_id=session, wait=True, timeout=WAIT)

    page = await client.list_runs(session_id=session, page_size=1_000_000)

    assert len(page.runs) == 2
    assert page.next_page_token == ""


async def test_a_tenant_at_its_active_run_limit_is_told_when_to_retry_and_others_are_not_held_up(
    start_service: StartService, model_config: ModelConfig, fake_openai: FakeOpenAI, database_url: str
) -> None:
    released = asyncio.Event()
    fake_openai.script(gate(text("One."), released), gate(text("Two."), released), text("Theirs."))
    async with (
        start_service(
            model_config, api_keys=tenant_keys(BUSY_KEY, OTHER_KEY), limits=Limits(max_active_runs=2)
        ) as service,
        TimestepClient(f"127.0.0.1:{service.port}", api_key=BUSY_KEY) as acme,
        TimestepClient(f"127.0.0.1:{service.port}", api_key=OTHER_KEY) as globex,
    ):
        first = await acme.create_run("assistant", "One", request_id=unique("req"), timeout=WAIT)
        await acme.create_run("assistant", "Two", timeout=WAIT)
        # Both runs are RUNNING (their segments start on their own): nothing changes meanwhile.
        await fake_openai.wait_for_requests(2, WAIT)
        before = await db_state(database_url)

        error = await expect_rpc_error(
            acme.create_run("assistant", "Three", timeout=WAIT), grpc.StatusCode.RESOURCE_EXHAUSTED
        )

        assert "2 runs are already queued or running" in (error.details() or "")
        status = rpc_status.from_call(error)
        assert status is not None
        details = {any_.TypeName(): any_ for any_ in status.details}
        retry = error_details_pb2.RetryInfo()
        details["google.rpc.RetryInfo"].Unpack(retry)
        assert retry.retry_delay.ToTimedelta().total_seconds() > 0
        info = error_details_pb2.ErrorInfo()
        details["google.rpc.ErrorInfo"].Unpack(info)
        assert info.reason == "TOO_MANY_ACTIVE_RUNS"
        assert await db_state(database_url) == before
        # Repeating a request that made a run is not a new run: it is answered, not refused.
        repeated = await acme.create_run("assistant", "One", request_id=first.request_id, timeout=WAIT)
        assert repeated.id == first.id
        # Another tenant's runs are counted apart.
        theirs = await globex.create_run("assistant", "Mine", wait=True, timeout=WAIT)
        assert theirs.status == RunStatus.RUN_STATUS_COMPLETED

        released.set()
        await collect_events(acme, first.id)
        fake_openai.script(text("Three."))
        third = await acme.create_run("assistant", "Three", wait=True, timeout=WAIT)
        assert third.status == RunStatus.RUN_STATUS_COMPLETED
