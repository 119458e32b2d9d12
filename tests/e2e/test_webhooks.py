"""Webhooks: a paused run reaches a signed webhook (signatures checked by an independent
implementation of Standard Webhooks), deliveries are retried until the receiver takes them and
listed with their attempts, a rotated-out secret keeps signing for the overlap asked for and no
longer, and destinations that are not public are refused before any connection is made."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2
from timestep.runtime.providers import ModelConfig
from timestep.settings import WebhookSettings
from timestep_client import RunStatus, TimestepClient
from timestep_client.v1 import webhooks_pb2

from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.fakes.webhook_receiver import Received, WebhookReceiver, verified
from timestep_testing.harness import assert_no_secret_anywhere
from timestep_testing.helpers import (
    EMAIL_ARGS,
    error_reason,
    expect_rpc_error,
    pending,
    settled_deliveries,
    tenant_keys,
    violated_fields,
)

# Retries in tenths of a second, so that a test sees several without waiting long.
FAST = WebhookSettings(allow_private=True, retry_initial_s=0.1, retry_max_s=0.3, dispatch_interval_s=0.05)


@asynccontextmanager
async def webhook_service(
    start_service: StartService, model_config: ModelConfig, database: str, settings: WebhookSettings = FAST
) -> AsyncIterator[TimestepClient]:
    """A service on a database of the test's own: no other test's runs reach its webhooks."""
    async with (
        start_service(model_config, database_url=database, webhooks=settings) as service,
        TimestepClient(f"127.0.0.1:{service.port}") as client,
    ):
        yield client


async def test_a_paused_run_reaches_a_signed_webhook_with_its_pending_interruptions_then_its_completion(
    start_service: StartService, model_config: ModelConfig, durable_database: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_email"), text("Sent."))
    async with (
        WebhookReceiver() as receiver,
        webhook_service(start_service, model_config, durable_database) as client,
    ):
        created = await client.create_webhook(receiver.url, description="approvals")
        run = await client.create_run("assistant", "Email Bob", wait=True)
        [interrupted] = await receiver.wait_for("run.interrupted")
        [waiting] = pending(run)
        await client.approve(run.id, waiting.id)
        await client.resume(run.id, wait=True)
        [completed] = await receiver.wait_for("run.completed")
        deliveries = await settled_deliveries(client, created.webhook.id, 2)

    assert created.secret.startswith("whsec_")
    assert list(created.webhook.event_types) == [
        "run.interrupted",
        "run.completed",
        "run.failed",
        "run.cancelled",
        "interruption.expired",
    ]
    event = verified(interrupted, created.secret)
    assert event["type"] == "run.interrupted"
    assert event["data"]["run"]["id"] == run.id
    assert event["data"]["run"]["status"] == "interrupted"
    [asked] = event["data"]["interruptions"]
    assert (asked["id"], asked["tool_name"], asked["agent"]) == (waiting.id, "send_email", "assistant")
    assert asked["arguments_json"] == waiting.arguments_json
    done = verified(completed, created.secret)
    assert done["data"]["run"]["final_output"] == "Sent."
    assert interrupted.id != completed.id
    assert [(d.event_type, d.status) for d in deliveries] == [
        ("run.completed", webhooks_pb2.DELIVERY_STATUS_SUCCEEDED),
        ("run.interrupted", webhooks_pb2.DELIVERY_STATUS_SUCCEEDED),
    ]
    assert {d.id for d in deliveries} == {interrupted.id, completed.id}
    for delivery in deliveries:
        [attempt] = delivery.attempts
        assert (attempt.number, attempt.response_code, attempt.response_body_prefix) == (1, 200, "ok")
        assert attempt.latency_ms > 0


async def test_a_receiver_that_fails_gets_the_event_again_under_the_same_id_until_it_takes_it(
    start_service: StartService, model_config: ModelConfig, durable_database: str
) -> None:
    async with (
        WebhookReceiver(statuses=[503, 500]) as receiver,
        webhook_service(start_service, model_config, durable_database) as client,
    ):
        created = await client.create_webhook(receiver.url, ["run.completed"])
        delivery = await client.send_test_event(created.webhook.id)
        received = await receiver.wait_for("webhook.test", times=3)
        [listed] = await settled_deliveries(client, created.webhook.id, 1)

    assert delivery.status == webhooks_pb2.DELIVERY_STATUS_PENDING
    assert {r.id for r in received} == {delivery.id}
    assert [verified(r, created.secret)["data"] for r in received] == [{"webhook_id": created.webhook.id}] * 3
    assert listed.status == webhooks_pb2.DELIVERY_STATUS_SUCCEEDED
    assert [(a.number, a.response_code) for a in listed.attempts] == [(1, 503), (2, 500), (3, 200)]
    assert listed.attempts[0].response_body_prefix == "not now"


async def test_a_delivery_is_given_up_once_its_retry_window_has_passed(
    start_service: StartService, model_config: ModelConfig, durable_database: str
) -> None:
    settings = WebhookSettings(
        allow_private=True,
        retry_initial_s=0.05,
        retry_max_s=0.05,
        retry_window_s=0.12,
        dispatch_interval_s=0.05,
    )
    async with (
        WebhookReceiver(statuses=[500] * 10) as receiver,
        webhook_service(start_service, model_config, durable_database, settings) as client,
    ):
        created = await client.create_webhook(receiver.url)
        await client.send_test_event(created.webhook.id)
        await receiver.wait_for("webhook.test", times=2)
        [listed] = await settled_deliveries(client, created.webhook.id, 1)

    assert listed.status == webhooks_pb2.DELIVERY_STATUS_FAILED
    assert listed.HasField("finish_time")
    # Waits of 25 to 50 ms each: at most four fit in the 120 ms window, after the first attempt.
    assert 2 <= len(listed.attempts) <= 5
    assert all(a.response_code == 500 for a in listed.attempts)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.7/hooks",
        "http://172.16.3.4/hooks",
        "http://192.168.1.10:8080/hooks",
        "http://[fc00::1]/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/hooks",
        "http://127.0.0.1/hooks",
        "http://[::1]:9/hooks",
        "http://[::ffff:10.0.0.1]/hooks",
        "http://0.0.0.0/hooks",
        "http://localhost:9/hooks",
        "http://224.0.0.1/hooks",
    ],
)
async def test_a_destination_that_is_not_public_is_refused_when_subscribing(
    client: TimestepClient, url: str
) -> None:
    error = await expect_rpc_error(client.create_webhook(url), grpc.StatusCode.INVALID_ARGUMENT)

    assert "refused" in (error.details() or "")
    assert error_reason(error) == "WEBHOOK_DESTINATION_FORBIDDEN"
    assert all(w.url != url for w in (await client.list_webhooks(page_size=500)).webhooks)


async def test_allowing_private_destinations_still_refuses_cloud_metadata_and_multicast(
    start_service: StartService, model_config: ModelConfig, durable_database: str
) -> None:
    async with webhook_service(start_service, model_config, durable_database) as client:
        loopback = await client.create_webhook("http://127.0.0.1:9/hooks")
        private = await client.create_webhook("http://10.1.2.3/hooks")
        metadata = await expect_rpc_error(
            client.create_webhook("http://169.254.169.254/"), grpc.StatusCode.INVALID_ARGUMENT
        )
        multicast = await expect_rpc_error(
            client.create_webhook("http://[ff02::1]/"), grpc.StatusCode.INVALID_ARGUMENT
        )

    assert loopback.webhook.url == "http://127.0.0.1:9/hooks"
    assert private.webhook.url == "http://10.1.2.3/hooks"
    assert "metadata" in (metadata.details() or "")
    assert "multicast" in (multicast.details() or "")


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://user:pw@example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": ""}, "url"),
        ({"url": "https://example.com/x", "event_types": ["run.started"]}, "event_types"),
    ],
)
async def test_a_bad_subscription_is_refused_naming_the_field(
    client: TimestepClient, request_fields: dict[str, Any], field: str
) -> None:
    error = await expect_rpc_error(
        client.webhooks.CreateWebhook(webhooks_pb2.CreateWebhookRequest(**request_fields)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )

    assert violated_fields(error) == [field]


async def test_webhooks_are_listed_rotated_deleted_and_secrets_are_kept_only_where_they_sign(
    start_service: StartService,
    model_config: ModelConfig,
    durable_database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with WebhookReceiver() as receiver:
        async with webhook_service(start_service, model_config, durable_database) as client:
            first = await client.create_webhook(receiver.url, ["run.failed"])
            second = await client.create_webhook(receiver.url, ["run.completed", "run.failed"])
            listed = await client.list_webhooks(page_size=1)
            rest = await client.list_webhooks(page_size=1, page_token=listed.next_page_token)
            rotated = await client.rotate_webhook_secret(first.webhook.id, previous_secret_ttl=timedelta(0))
            await client.send_test_event(first.webhook.id)
            [test_event] = await receiver.wait_for("webhook.test")
            await client.delete_webhook(second.webhook.id)
            missing = await expect_rpc_error(client.get_webhook(second.webhook.id), grpc.StatusCode.NOT_FOUND)
            [remaining] = (await client.list_webhooks()).webhooks
        await assert_no_secret_anywhere(
            durable_database,
            [first.secret, second.secret, rotated.secret],
            logs=caplog.text,
            events=[test_event.headers, test_event.body],
            kept_in=["public.webhooks"],
        )

    assert [w.id for w in listed.webhooks] == [first.webhook.id]
    assert [w.id for w in rest.webhooks] == [second.webhook.id]
    assert rest.next_page_token == ""
    assert list(second.webhook.event_types) == ["run.completed", "run.failed"]
    assert rotated.secret != first.secret
    assert not rotated.webhook.HasField("previous_secret_expire_time")
    verified(test_event, rotated.secret)
    with pytest.raises(Exception, match="signature"):
        verified(test_event, first.secret)
    assert error_reason(missing) == "WEBHOOK_NOT_FOUND"
    assert remaining.id == first.webhook.id


def _signatures(received: Received) -> list[str]:
    return received.headers["webhook-signature"].split(" ")


async def _test_event(client: TimestepClient, receiver: WebhookReceiver, webhook_id: str) -> Received:
    """A "webhook.test" event sent now, as the receiver got it."""
    earlier = len(receiver.of_type("webhook.test"))
    sent = await client.send_test_event(webhook_id)
    await receiver.wait_for("webhook.test", times=earlier + 1)
    [received] = [r for r in receiver.received if r.id == sent.id]
    return received


async def _database_clock_passed(database: str, moment: datetime) -> None:
    """Wait until the database's clock (which decides expiries) is past `moment`."""
    connection = await asyncpg.connect(database)
    try:
        # Nothing announces the time passing: polled, bounded by the timeout.
        async with asyncio.timeout(10):
            while not await connection.fetchval("SELECT clock_timestamp() > $1", moment):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        await connection.close()


async def _previous_secret_row(database: str, webhook_id: str) -> tuple[str | None, datetime | None]:
    connection = await asyncpg.connect(database)
    try:
        found = await connection.fetchrow(
            "SELECT previous_secret, previous_secret_expire_time FROM webhooks WHERE id = $1", webhook_id
        )
    finally:
        await connection.close()
    assert found is not None
    return found["previous_secret"], found["previous_secret_expire_time"]


async def test_a_rotated_out_secret_keeps_signing_during_the_overlap_and_is_erased_after_it(
    start_service: StartService,
    model_config: ModelConfig,
    durable_database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        WebhookReceiver() as receiver,
        webhook_service(start_service, model_config, durable_database) as client,
    ):
        created = await client.create_webhook(receiver.url, ["run.completed"])
        before = datetime.now(UTC)
        # Unset overlap: the service's 24 h.
        second = await client.rotate_webhook_secret(created.webhook.id)
        during = await _test_event(client, receiver, created.webhook.id)
        shown = await client.get_webhook(created.webhook.id)
        third = await client.rotate_webhook_secret(
            created.webhook.id, previous_secret_ttl=timedelta(seconds=1)
        )
        expiry = third.webhook.previous_secret_expire_time.ToDatetime(tzinfo=UTC)
        await _database_clock_passed(durable_database, expiry)
        after = await _test_event(client, receiver, created.webhook.id)
        # The dispatcher's rounds erase it; nothing announces that, so it is polled.
        async with asyncio.timeout(10):
            while await _previous_secret_row(durable_database, created.webhook.id) != (None, None):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        listed = (await client.list_webhooks()).webhooks
        await assert_no_secret_anywhere(
            durable_database,
            [created.secret, second.secret, third.secret],
            logs=caplog.text,
            events=[during.headers, during.body, after.headers, after.body],
            kept_in=["public.webhooks"],
        )

    overlap_end = second.webhook.previous_secret_expire_time.ToDatetime(tzinfo=UTC)
    assert before + timedelta(hours=24) <= overlap_end <= datetime.now(UTC) + timedelta(hours=24)
    assert overlap_end - second.webhook.secret_time.ToDatetime(tzinfo=UTC) == timedelta(hours=24)
    assert shown.previous_secret_expire_time == second.webhook.previous_secret_expire_time
    # During the overlap: signed with the new secret and the old one (the new one first).
    assert len(_signatures(during)) == 2
    assert verified(during, second.secret) == verified(during, created.secret) == during.json
    # After it: the new secret only, and the listing no longer shows an expiry.
    assert expiry - third.webhook.secret_time.ToDatetime(tzinfo=UTC) == timedelta(seconds=1)
    assert len(_signatures(after)) == 1
    assert verified(after, third.secret) == after.json
    with pytest.raises(Exception, match="signature"):
        verified(after, second.secret)
    [webhook] = listed
    assert not webhook.HasField("previous_secret_expire_time")


async def test_rotating_without_overlap_signs_with_the_new_secret_only_and_drops_an_earlier_overlap(
    start_service: StartService, model_config: ModelConfig, durable_database: str
) -> None:
    async with (
        WebhookReceiver() as receiver,
        webhook_service(start_service, model_config, durable_database) as client,
    ):
        created = await client.create_webhook(receiver.url, ["run.completed"])
        overlapping = await client.rotate_webhook_secret(
            created.webhook.id, previous_secret_ttl=timedelta(hours=1)
        )
        revoked = await client.rotate_webhook_secret(created.webhook.id, previous_secret_ttl=timedelta(0))
        received = await _test_event(client, receiver, created.webhook.id)
        stored = await _previous_secret_row(durable_database, created.webhook.id)

    assert overlapping.webhook.HasField("previous_secret_expire_time")
    assert not revoked.webhook.HasField("previous_secret_expire_time")
    assert stored == (None, None)
    assert _signatures(received) == [received.headers["webhook-signature"]]
    assert verified(received, revoked.secret) == received.json
    for old in (created.secret, overlapping.secret):
        with pytest.raises(Exception, match="signature"):
            verified(received, old)


@pytest.mark.parametrize(
    "ttl",
    [
        duration_pb2.Duration(seconds=-1),
        duration_pb2.Duration(seconds=0, nanos=-5),
        duration_pb2.Duration(seconds=30 * 86400, nanos=1),
        duration_pb2.Duration(seconds=10**12),
    ],
)
async def test_an_overlap_that_is_negative_or_too_long_is_refused_and_changes_nothing(
    start_service: StartService, model_config: ModelConfig, durable_database: str, ttl: duration_pb2.Duration
) -> None:
    async with (
        WebhookReceiver() as receiver,
        webhook_service(start_service, model_config, durable_database) as client,
    ):
        created = await client.create_webhook(receiver.url, ["run.completed"])
        error = await expect_rpc_error(
            client.webhooks.RotateWebhookSecret(
                webhooks_pb2.RotateWebhookSecretRequest(
                    webhook_id=created.webhook.id, previous_secret_ttl=ttl
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        unchanged = await client.get_webhook(created.webhook.id)

    assert violated_fields(error) == ["previous_secret_ttl"]
    assert "30 days" in (error.details() or "")
    assert unchanged.secret_time == created.webhook.secret_time
    assert not unchanged.HasField("previous_secret_expire_time")


async def test_a_run_cancelled_while_paused_is_announced(
    start_service: StartService, model_config: ModelConfig, durable_database: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    async with (
        WebhookReceiver() as receiver,
        webhook_service(start_service, model_config, durable_database) as client,
    ):
        created = await client.create_webhook(receiver.url, ["run.cancelled"])
        run = await client.create_run("assistant", "Email Bob", wait=True)
        await client.cancel(run.id, "changed my mind")
        [cancelled] = await receiver.wait_for("run.cancelled")

    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    assert receiver.of_type("run.interrupted") == []
    event = verified(cancelled, created.secret)
    assert event["data"]["run"]["error"] == {"code": "cancelled", "message": "changed my mind"}


async def test_a_tenants_webhooks_hear_only_its_runs_and_are_not_found_by_another_tenant(
    start_service: StartService, model_config: ModelConfig, durable_database: str, fake_openai: FakeOpenAI
) -> None:
    keys = tenant_keys("key-acme", "key-globex")
    fake_openai.script(text("For globex."), text("For acme."))
    async with (
        WebhookReceiver() as receiver,
        start_service(model_config, database_url=durable_database, webhooks=FAST, api_keys=keys) as service,
        TimestepClient(f"127.0.0.1:{service.port}", api_key="key-acme") as acme,
        TimestepClient(f"127.0.0.1:{service.port}", api_key="key-globex") as globex,
    ):
        created = await acme.create_webhook(receiver.url, ["run.completed"])
        hidden = await expect_rpc_error(globex.get_webhook(created.webhook.id), grpc.StatusCode.NOT_FOUND)
        not_deleted = await expect_rpc_error(
            globex.delete_webhook(created.webhook.id), grpc.StatusCode.NOT_FOUND
        )
        listed = await globex.list_webhooks()
        await globex.create_run("assistant", "Hi", wait=True)
        acme_run = await acme.create_run("assistant", "Hi", wait=True)
        [completed] = await receiver.wait_for("run.completed")
        deliveries = (await acme.list_webhook_deliveries(created.webhook.id)).deliveries

    assert error_reason(hidden) == error_reason(not_deleted) == "WEBHOOK_NOT_FOUND"
    # Created with the events, in their transactions: globex's run made none for acme's webhook.
    assert [d.run_id for d in deliveries] == [acme_run.id]
    assert list(listed.webhooks) == []
    assert verified(completed, created.secret)["data"]["run"]["id"] == acme_run.id
    assert len(receiver.received) == 1
