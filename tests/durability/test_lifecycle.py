"""Orderly shutdown of a real `timestep serve` process on SIGTERM: health turns NOT_SERVING
before the process exits, new RPCs are refused with UNAVAILABLE, an open event stream ends with
UNAVAILABLE and a "reconnect" message, the run in flight completes after the restart, and a
reconnecting subscriber sees every stored event exactly once. With `--log-format json` every log
line is a JSON object and the lines about a run carry its run id and request id.

Every wait reads a stream, a process or the fake model with a timeout; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from timestep.observability.interceptor import SHUTTING_DOWN
from timestep_client import RunStatus
from timestep_client.v1 import runs_pb2

from tests.durability.conftest import SHUTDOWN_TIMEOUT, WAIT, LaunchReplica, Replica, follow_to_stop
from timestep_testing.fakes.openai_responses import FakeOpenAI, gate, text
from timestep_testing.helpers import expect_rpc_error, is_stop_status, sequences

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def json_log_lines(replica: Replica) -> list[dict[str, Any]]:
    """Every log line the process wrote that looks like JSON, parsed (a bad line fails the test)."""
    return [json.loads(line) for line in replica.output if line.startswith("{")]


async def read_until_error(
    stream: grpc.aio.UnaryStreamCall[Any, Any], received: list[runs_pb2.RunEvent]
) -> None:
    """Read `stream` into `received` until it fails (the caller expects the AioRpcError)."""
    while True:
        message = await stream.read()
        assert message is not grpc.aio.EOF, "the stream ended without a status error"
        received.append(message.event)


async def test_sigterm_drains_health_streams_and_new_rpcs_and_the_run_finishes_after_restart(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    held = asyncio.Event()  # never set: the first model call is in flight when SIGTERM comes
    fake_openai.script(gate(text("Never delivered."), held), text("Done after the restart."))
    server = await launch("drain", "--log-format", "json", "--shutdown-grace", "5")
    assert server.process is not None
    async with server.client() as client:
        health = health_pb2_grpc.HealthStub(client.channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await asyncio.wait_for(watch.read(), WAIT)).status == SERVING

        run = await client.create_run("assistant", "Say something.", request_id="req-lifecycle-1")
        await fake_openai.wait_for_requests(1, WAIT)
        stream = client.runs.StreamRunEvents(runs_pb2.StreamRunEventsRequest(run_id=run.id))
        received: list[runs_pb2.RunEvent] = []
        received.append((await asyncio.wait_for(stream.read(), WAIT)).event)

        server.process.send_signal(signal.SIGTERM)

        # Health first: the watcher is told NOT_SERVING while the process is still up.
        assert (await asyncio.wait_for(watch.read(), WAIT)).status == NOT_SERVING
        assert server.process.returncode is None
        # New RPCs are refused.
        await expect_rpc_error(asyncio.wait_for(client.get_run(run.id), WAIT), grpc.StatusCode.UNAVAILABLE)
        # The open stream ends with UNAVAILABLE, saying to reconnect.
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(read_until_error(stream, received), WAIT)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE, ended.value
        assert ended.value.details() == SHUTTING_DOWN

        exit_code = await asyncio.wait_for(server.process.wait(), SHUTDOWN_TIMEOUT)
        assert exit_code == 0, server.log
        watch.cancel()

        # The run was left in flight; the restarted replica (same executor id) recovers it, and
        # following from the last sequence received continues without gaps or repeats.
        await server.start()
        rest = await follow_to_stop(client, run.id, received[-1].sequence)
        final = await client.get_run(run.id)

    assert final.status == RunStatus.RUN_STATUS_COMPLETED, final
    assert final.final_output == "Done after the restart."
    everything = sequences([*received, *rest])
    assert everything == list(range(1, everything[-1] + 1)), everything
    assert is_stop_status(rest[-1])
    assert "Traceback" not in server.log

    lines = json_log_lines(server)
    assert lines, server.log
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    create_lines = [line for line in lines if line.get("rpc_method", "").endswith("/CreateRun")]
    assert create_lines, lines
    assert create_lines[0]["run_id"] == run.id
    assert create_lines[0]["request_id"] == "req-lifecycle-1"
    assert create_lines[0]["code"] == "OK"
    # Lines logged while the run executed (not in an RPC) carry its run id too.
    assert any(line.get("run_id") == run.id and "rpc_method" not in line for line in lines), lines


async def test_reconnecting_subscriber_sees_every_event_once_across_a_sigterm_restart(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    held = asyncio.Event()
    fake_openai.script(gate(text("Never delivered."), held), text("Finished on the new process."))
    server = await launch("drain-follow", "--shutdown-grace", "2")
    async with server.client() as client:
        run = await client.create_run("assistant", "Say something.")
        # TimestepClient.stream_events, reconnecting on UNAVAILABLE, from the first event on.
        subscriber = asyncio.create_task(follow_to_stop(client, run.id, timeout=2 * WAIT))
        await fake_openai.wait_for_requests(1, WAIT)

        await server.stop()  # SIGTERM; the subscriber's stream ends with UNAVAILABLE
        assert not subscriber.done()
        await server.start()

        seen = await subscriber
        final = await client.get_run(run.id)

    assert final.status == RunStatus.RUN_STATUS_COMPLETED, final
    assert final.final_output == "Finished on the new process."
    numbers = sequences(seen)
    assert numbers == list(range(1, numbers[-1] + 1)), numbers
    assert is_stop_status(seen[-1])
