"""An operator reading the service's ERROR lines finds only real errors: clients cancelling their
event streams, and runs cancelled while their model call is in flight (through the replica that
executes them or through another one), log none."""

from __future__ import annotations

import asyncio
from typing import Final

from timestep_client import RunStatus, TimestepClient
from timestep_client.v1 import runs_pb2

from tests.durability.conftest import WAIT, LaunchReplica, Replica, follow_to_stop
from timestep_testing.fakes.openai_responses import FakeOpenAI, gate, text

STREAMS: Final = 3
FOLLOWERS: Final = 10


def error_lines(replica: Replica) -> list[str]:
    return [line for line in replica.log.splitlines() if "ERROR" in line or "Traceback" in line]


async def cancel_streams_then_the_run(
    on_executing: TimestepClient, canceller: TimestepClient, fake_openai: FakeOpenAI, held: asyncio.Event
) -> runs_pb2.Run:
    """A run held in its model call; streams of it cancelled while waiting for its next event;
    the run cancelled through `canceller`, then followed to its end."""
    requests, abandoned = len(fake_openai.requests), len(fake_openai.abandoned)
    run = await on_executing.create_run("assistant", "Write a long essay.")
    await fake_openai.wait_for_requests(requests + 1, WAIT)
    for _ in range(STREAMS):
        stream = on_executing.runs.StreamRunEvents(runs_pb2.StreamRunEventsRequest(run_id=run.id))
        await asyncio.wait_for(stream.read(), WAIT)
        stream.cancel()
    await canceller.cancel(run.id, "Changed my mind.")
    await fake_openai.wait_for_abandoned(abandoned + 1, WAIT)
    held.set()
    # Ends its stream as the run stops, and closes the channel right after: the client side of
    # a stream that ends at the moment it is cancelled.
    await follow_to_stop(on_executing, run.id)
    return await canceller.get_run(run.id)


async def test_cancelled_streams_and_runs_log_no_error(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    here, elsewhere = asyncio.Event(), asyncio.Event()
    fake_openai.script(gate(text("Never seen."), here), gate(text("Never seen either."), elsewhere))
    a, b = await asyncio.gather(launch("A"), launch("B"))
    async with a.client() as on_a, b.client() as on_b:
        cancelled_on_a = await cancel_streams_then_the_run(on_a, on_a, fake_openai, here)
        cancelled_through_b = await cancel_streams_then_the_run(on_a, on_b, fake_openai, elsewhere)
        for _ in range(FOLLOWERS):  # more streams ending as their client lets go
            await follow_to_stop(on_a, cancelled_on_a.id)
    await asyncio.gather(a.stop(), b.stop())

    assert cancelled_on_a.status == RunStatus.RUN_STATUS_CANCELLED
    assert cancelled_through_b.status == RunStatus.RUN_STATUS_CANCELLED
    assert a.log.count("StreamRunEvents CANCELLED") >= 2 * STREAMS
    assert error_lines(a) == []
    assert error_lines(b) == []
