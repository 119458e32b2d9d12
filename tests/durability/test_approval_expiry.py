"""Approval expiry is durable: an approval that times out while its replica is down expires once
the replica is back (neither lost nor repeated), and with two replicas exactly one of them
expires it. Waits follow the run's own webhook, which the receiver is told of."""

from __future__ import annotations

from datetime import timedelta

from timestep_client import InterruptionStatus, RunStatus, TimestepClient
from timestep_client.v1 import runs_pb2

from tests.durability.conftest import WAIT, LaunchReplica
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.fakes.webhook_receiver import WebhookReceiver
from timestep_testing.helpers import EMAIL_ARGS, collect_events, function_call_outputs, kinds

TIMEOUT = timedelta(seconds=2)
MESSAGE = "Nobody answered in time; the email was not sent."


async def create_expiring_run(client: TimestepClient, webhook_url: str) -> runs_pb2.Run:
    request = runs_pb2.CreateRunRequest(
        agent="assistant",
        input="Email Bob",
        auto_resume_on_expiry=True,
        approval_expiry_message=MESSAGE,
        webhook_url=webhook_url,
        wait=True,
    )
    request.approval_timeout.FromTimedelta(TIMEOUT)
    run: runs_pb2.Run = (await client.runs.CreateRun(request)).run
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    return run


def assert_expired_once(run: runs_pb2.Run, events: list[runs_pb2.RunEvent], fake: FakeOpenAI) -> None:
    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    [decided] = run.interruptions
    assert (decided.status, decided.expired) == (InterruptionStatus.INTERRUPTION_STATUS_REJECTED, True)
    assert kinds(events).count("interruption_expired") == 1
    assert kinds(events).count("interruption_decided") == 1
    assert run.segment_count == 2
    assert len(fake.requests) == 2
    assert function_call_outputs(fake.requests[1]) == {"call_late": MESSAGE}


async def test_an_approval_that_times_out_while_its_replica_is_down_expires_once_after_the_restart(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_late"), text("Not sent."))
    async with WebhookReceiver() as receiver:
        server = await launch("expiry", "--webhook-allow-private")
        async with server.client() as client:
            run = await create_expiring_run(client, receiver.url)
            await server.kill()  # well within the two seconds
            await server.start()
            await receiver.wait_for("run.completed", timeout=WAIT)
            final = await client.get_run(run.id)
            events = await collect_events(client, run.id, timeout=WAIT)

    assert_expired_once(final, events, fake_openai)
    assert len(receiver.of_type("interruption.expired")) == 1


async def test_with_two_replicas_exactly_one_expires_an_approval(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_late"), text("Not sent."))
    async with WebhookReceiver() as receiver:
        a = await launch("A", "--webhook-allow-private")
        b = await launch("B", "--webhook-allow-private")
        async with a.client() as on_a, b.client() as on_b:
            run = await create_expiring_run(on_a, receiver.url)
            await receiver.wait_for("run.completed", timeout=WAIT)
            final = await on_b.get_run(run.id)
            events = await collect_events(on_b, run.id, timeout=WAIT)

    assert_expired_once(final, events, fake_openai)
    assert len(receiver.of_type("interruption.expired")) == 1
