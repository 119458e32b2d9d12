"""`TimestepService.drain()` in process: health NOT_SERVING overall and per service, new RPCs
refused with UNAVAILABLE, an open event stream ended with UNAVAILABLE while health checks still
answer. (The SIGTERM path of a real process, and the restart, are in
tests/durability/test_lifecycle.py.)"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from timestep.api.grpc.server import SERVICE_NAMES
from timestep.app import TimestepService
from timestep.observability.interceptor import SHUTTING_DOWN
from timestep_client import TimestepClient
from timestep_client.v1 import runs_pb2

from timestep_testing.fakes.openai_responses import FakeOpenAI, gate, text
from timestep_testing.helpers import WAIT, expect_rpc_error


async def test_drain_turns_health_not_serving_refuses_rpcs_and_ends_streams(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    held = asyncio.Event()
    fake_openai.script(gate(text("Late."), held))
    health = health_pb2_grpc.HealthStub(client.channel)
    run = await client.create_run("assistant", "Hi.")
    await fake_openai.wait_for_requests(1, WAIT)
    stream = client.runs.StreamRunEvents(runs_pb2.StreamRunEventsRequest(run_id=run.id))
    first = await asyncio.wait_for(stream.read(), WAIT)
    assert first is not grpc.aio.EOF

    await service.drain()

    assert service.draining
    for name in ("", *SERVICE_NAMES):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=WAIT)
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING, name
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await asyncio.wait_for(_read_to_end(stream), WAIT)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ended.value.details() == SHUTTING_DOWN
    refused = await expect_rpc_error(client.get_run(run.id), grpc.StatusCode.UNAVAILABLE)
    assert refused.details() == SHUTTING_DOWN
    held.set()


async def _read_to_end(stream: grpc.aio.UnaryStreamCall[runs_pb2.StreamRunEventsRequest, object]) -> None:
    while await stream.read() is not grpc.aio.EOF:
        pass
