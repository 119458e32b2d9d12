"""Webhook deliveries are durable: one being retried survives `kill -9` of its replica (restarted
with the same executor id) and the loss of its replica (another one recovers it), and arrives
once the receiver is back, under the id it was first sent with."""

from __future__ import annotations

import asyncpg
from timestep_client.v1 import webhooks_pb2

from tests.durability.conftest import WAIT, LaunchReplica
from timestep_testing.fakes.webhook_receiver import WebhookReceiver, verified
from timestep_testing.helpers import deliveries_when, settled_deliveries

# Retries a second apart: time enough to kill the replica between two of them.
HOOKS = ("--webhook-allow-private", "--webhook-retry-initial", "1", "--webhook-retry-max", "1")


async def test_a_delivery_being_retried_survives_a_kill_and_arrives_once_the_receiver_is_back(
    launch: LaunchReplica,
) -> None:
    receiver = WebhookReceiver(statuses=[503])
    await receiver.start()
    server = await launch("hooks", *HOOKS)
    async with server.client() as client:
        created = await client.create_webhook(receiver.url)
        delivery = await client.send_test_event(created.webhook.id)
        # The first attempt was answered 503 and recorded: the delivery waits for its retry.
        await deliveries_when(client, created.webhook.id, lambda found: len(found[0].attempts) == 1, WAIT)
        await receiver.stop()
        await server.kill()
        await receiver.start()
        await server.start()
        received = await receiver.wait_for("webhook.test", times=2, timeout=WAIT)
        [listed] = await settled_deliveries(client, created.webhook.id, 1, timeout=WAIT)
    await receiver.stop()

    assert {r.id for r in received} == {delivery.id}
    for request in received:
        assert verified(request, created.secret)["data"] == {"webhook_id": created.webhook.id}
    assert listed.status == webhooks_pb2.DELIVERY_STATUS_SUCCEEDED
    assert listed.attempts[0].response_code == 503
    assert listed.attempts[-1].response_code == 200


async def test_a_delivery_of_a_replica_that_dies_is_finished_by_another(
    launch: LaunchReplica, durable_database: str
) -> None:
    receiver = WebhookReceiver(statuses=[503])
    await receiver.start()
    a = await launch("A", *HOOKS, "--replica-timeout", "2")
    b = await launch("B", *HOOKS, "--replica-timeout", "2")
    async with a.client() as client:
        created = await client.create_webhook(receiver.url)
        delivery = await client.send_test_event(created.webhook.id)
        await deliveries_when(client, created.webhook.id, lambda found: len(found[0].attempts) == 1, WAIT)
    # Whichever replica started the delivery's workflow dies for good, mid-retry.
    connection = await asyncpg.connect(durable_database)
    try:
        owner = await connection.fetchval(
            "SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = $1", delivery.id
        )
    finally:
        await connection.close()
    dead, survivor = (a, b) if owner == "A" else (b, a)
    await dead.kill()
    async with survivor.client() as client:
        received = await receiver.wait_for("webhook.test", times=2, timeout=WAIT)
        [listed] = await settled_deliveries(client, created.webhook.id, 1, timeout=WAIT)
    await receiver.stop()

    assert owner in ("A", "B")
    assert {r.id for r in received} == {delivery.id}
    assert listed.status == webhooks_pb2.DELIVERY_STATUS_SUCCEEDED
    assert listed.attempts[-1].response_code == 200
