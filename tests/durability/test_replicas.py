"""Two `timestep serve` replicas on one database: every RPC works through either, a dead
replica's segment is recovered by the live one, and CancelRun reaches the replica running it."""

from __future__ import annotations

import asyncio

from timestep_client import RunStatus

from tests.durability.conftest import WAIT, LaunchReplica, Replica, follow_to_stop
from timestep_testing.fakes.openai_responses import FakeOpenAI, function_call, gate, message, response, text
from timestep_testing.helpers import (
    EMAIL_ARGS,
    EMAIL_SENT,
    EventStream,
    function_call_outputs,
    is_kind,
    kinds,
    pending,
    sequences,
    statuses,
)

# B's: a replica silent this long is taken for dead by B.
REPLICA_TIMEOUT = "2"


async def two_replicas(launch: LaunchReplica, *args: str) -> tuple[Replica, Replica]:
    """Replicas A and B, each calling the fake model with its own API key, so the fake's request
    headers tell which replica made each model call."""
    a, b = await asyncio.gather(launch("A", *args, api_key="key-A"), launch("B", *args, api_key="key-B"))
    return a, b


def caller(fake: FakeOpenAI, request_index: int, replicas: tuple[Replica, Replica]) -> Replica:
    """The replica that sent model request number `request_index`."""
    authorization = fake.headers[request_index]["authorization"]
    [replica] = [r for r in replicas if authorization == f"Bearer key-{r.executor_id}"]
    return replica


async def test_a_run_on_a_is_streamed_recovered_approved_and_resumed_on_b_when_a_dies(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    first_delta, rest_of_answer = asyncio.Event(), asyncio.Event()
    fake_openai.script(
        response(
            message("Emailing Bob now.", pause_after_first_delta=rest_of_answer),
            function_call("send_email", EMAIL_ARGS),
            hold=first_delta,
        ),
        response(message("Emailing Bob now."), function_call("send_email", EMAIL_ARGS)),
        text("Email sent to Bob."),
    )
    # A alone (default replica timeout) starts the run, so A is the replica executing it.
    a = await launch("A", api_key="key-A")
    async with a.client() as on_a:
        run = await on_a.create_run("assistant", "Email Bob.")
        await fake_openai.wait_for_requests(1, WAIT)
    b = await launch("B", "--replica-timeout", REPLICA_TIMEOUT, api_key="key-B")
    async with b.client() as on_b:
        async with EventStream(on_b, run.id) as stream:
            await stream.wait_for(is_kind("status_changed"))  # B's subscription is live
            first_delta.set()
            # A streams the model's first tokens; B's subscriber gets them through the database.
            delta = await stream.wait_for(is_kind("text_delta"), WAIT)
            # Waiting a bounded time is the point here: for longer than its timeout, B must leave
            # the segment of the live A alone (a second model call would show it did not).
            await asyncio.sleep(float(REPLICA_TIMEOUT) + 1.5)
            requests_while_a_lived = len(fake_openai.requests)

            await a.kill()  # mid-answer, and A never comes back

            paused_stream = await stream.rest(WAIT)
        paused = await on_b.get_run(run.id)
        [waiting] = pending(paused)
        await on_b.approve(run.id, waiting.id)
        await on_b.resume(run.id)
        rest = await follow_to_stop(on_b, run.id, paused.last_sequence)
        final = await on_b.get_run(run.id)

    assert delta.text_delta.delta == "Emailing"
    assert requests_while_a_lived == 1
    assert paused.status == RunStatus.RUN_STATUS_INTERRUPTED
    assert waiting.tool_name == "send_email"
    assert final.status == RunStatus.RUN_STATUS_COMPLETED, final
    assert final.final_output == "Email sent to Bob."
    # A's call died with A (its client went away); B made it again, with the same input, then
    # the call after the approval.
    assert fake_openai.abandoned == [0]
    assert [caller(fake_openai, n, (a, b)) for n in range(len(fake_openai.requests))] == [a, b, b]
    assert fake_openai.requests[1]["input"] == fake_openai.requests[0]["input"]
    assert list(function_call_outputs(fake_openai.requests[2]).values()) == [EMAIL_SENT]
    # B's subscriber saw every stored event once, in order, across A's death; then the rest.
    everything = sequences(stream.received) + sequences(rest)
    assert everything == list(range(1, final.last_sequence + 1))
    assert statuses(paused_stream)[-1] == RunStatus.RUN_STATUS_INTERRUPTED
    assert kinds(stream.received).count("tool_called") == 1
    assert kinds(rest).count("final_output") == 1


async def test_cancel_through_one_replica_stops_the_run_executing_on_the_other(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    held = asyncio.Event()
    fake_openai.script(gate(text("Too late to matter."), held))
    a, b = await two_replicas(launch)
    async with a.client() as on_a:
        run = await on_a.create_run("assistant", "Write a long essay.")
        await fake_openai.wait_for_requests(1, WAIT)  # the model call is in flight
    executing = caller(fake_openai, 0, (a, b))
    other = b if executing is a else a
    async with other.client() as client:
        running = await client.get_run(run.id)
        cancelled = await client.cancel(run.id, "The user changed their mind.")
        # The replica executing the run drops the model call in flight: its answer can never
        # be received, let alone recorded.
        await fake_openai.wait_for_abandoned(1, WAIT)
        held.set()
        events = await follow_to_stop(client, run.id)
        final = await client.get_run(run.id)

    assert running.status == RunStatus.RUN_STATUS_RUNNING
    assert fake_openai.abandoned == [0]
    assert cancelled.status == RunStatus.RUN_STATUS_CANCELLED
    assert cancelled.error.message == "The user changed their mind."
    assert final.status == RunStatus.RUN_STATUS_CANCELLED
    assert final.error.code == "cancelled"
    assert final.error.message == "The user changed their mind."
    assert final.final_output == ""
    assert statuses(events) == [
        RunStatus.RUN_STATUS_QUEUED,
        RunStatus.RUN_STATUS_RUNNING,
        RunStatus.RUN_STATUS_CANCELLED,
    ]
    assert "message_output" not in kinds(events)
    assert "final_output" not in kinds(events)
