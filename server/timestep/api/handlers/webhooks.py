"""WebhookService: subscriptions of URLs to run events, their secrets and deliveries."""

from __future__ import annotations

from datetime import timedelta

from timestep_client.v1 import webhooks_pb2

from timestep.api import convert, validation
from timestep.api.handlers.context import CallContext
from timestep.errors import FailedPreconditionError, InvalidArgumentError
from timestep.webhooks.service import MAX_PREVIOUS_SECRET_TTL, Webhooks
from timestep.webhooks.types import Attempt, Delivery, Webhook


def webhook_to_proto(webhook: Webhook) -> webhooks_pb2.Webhook:
    return webhooks_pb2.Webhook(
        id=webhook.id,
        url=convert.proto_string(webhook.url),
        event_types=webhook.event_types,
        description=convert.proto_string(webhook.description),
        create_time=convert.timestamp(webhook.create_time),
        run_id=webhook.run_id,
        secret_time=convert.timestamp(webhook.secret_time),
        previous_secret_expire_time=convert.timestamp(webhook.previous_secret_expire_time),
    )


def _attempt_to_proto(attempt: Attempt) -> webhooks_pb2.DeliveryAttempt:
    return webhooks_pb2.DeliveryAttempt(
        number=attempt.number,
        time=convert.timestamp(attempt.time),
        response_code=attempt.response_code,
        latency_ms=attempt.latency_ms,
        error=convert.proto_string(attempt.error),
        response_body_prefix=convert.proto_string(attempt.response_prefix),
    )


def delivery_to_proto(delivery: Delivery) -> webhooks_pb2.WebhookDelivery:
    return webhooks_pb2.WebhookDelivery(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        event_type=delivery.event_type,
        run_id=delivery.run_id,
        status=f"DELIVERY_STATUS_{delivery.status.name}",
        create_time=convert.timestamp(delivery.create_time),
        finish_time=convert.timestamp(delivery.finish_time),
        attempts=[_attempt_to_proto(a) for a in delivery.attempts],
    )


def _webhook_id(value: str) -> str:
    return validation.require(value, "webhook_id", "pass an id from CreateWebhook or ListWebhooks")


def _previous_secret_ttl(request: webhooks_pb2.RotateWebhookSecretRequest) -> timedelta | None:
    if not request.HasField("previous_secret_ttl"):
        return None
    ttl = request.previous_secret_ttl
    longest = MAX_PREVIOUS_SECRET_TTL.total_seconds()
    in_range = ttl.seconds >= 0 and ttl.seconds + ttl.nanos / 1e9 <= longest
    if not (in_range and 0 <= ttl.nanos < 1_000_000_000):
        raise InvalidArgumentError(
            f"previous_secret_ttl (seconds={ttl.seconds}, nanos={ttl.nanos}) must be from 0s (revoke "
            f"the previous secret at once) to {MAX_PREVIOUS_SECRET_TTL.days} days, e.g. 3600s to "
            "accept it for another hour.",
            field="previous_secret_ttl",
        )
    return ttl.ToTimedelta()


def need_durability() -> FailedPreconditionError:
    return FailedPreconditionError(
        "Webhooks are delivered by durable workflows; this service runs with --no-durability.",
        reason="WEBHOOKS_NEED_DURABILITY",
        subject="timestep.v1.WebhookService",
    )


class WebhookHandlers:
    def __init__(self, webhooks: Webhooks | None) -> None:
        self._hooks = webhooks

    @property
    def _webhooks(self) -> Webhooks:
        if self._hooks is None:
            raise need_durability()
        return self._hooks

    async def CreateWebhook(
        self, request: webhooks_pb2.CreateWebhookRequest, call: CallContext
    ) -> webhooks_pb2.CreateWebhookResponse:
        webhook, secret = await self._webhooks.create(
            call.scope, request.url, list(request.event_types), request.description
        )
        return webhooks_pb2.CreateWebhookResponse(webhook=webhook_to_proto(webhook), secret=secret)

    async def GetWebhook(
        self, request: webhooks_pb2.GetWebhookRequest, call: CallContext
    ) -> webhooks_pb2.GetWebhookResponse:
        webhook = await self._webhooks.get(call.scope, _webhook_id(request.webhook_id))
        return webhooks_pb2.GetWebhookResponse(webhook=webhook_to_proto(webhook))

    async def ListWebhooks(
        self, request: webhooks_pb2.ListWebhooksRequest, call: CallContext
    ) -> webhooks_pb2.ListWebhooksResponse:
        page = await self._webhooks.list(call.scope, request.page_size, request.page_token)
        return webhooks_pb2.ListWebhooksResponse(
            webhooks=[webhook_to_proto(w) for w in page.items], next_page_token=page.next_page_token
        )

    async def DeleteWebhook(
        self, request: webhooks_pb2.DeleteWebhookRequest, call: CallContext
    ) -> webhooks_pb2.DeleteWebhookResponse:
        await self._webhooks.delete(call.scope, _webhook_id(request.webhook_id))
        return webhooks_pb2.DeleteWebhookResponse()

    async def RotateWebhookSecret(
        self, request: webhooks_pb2.RotateWebhookSecretRequest, call: CallContext
    ) -> webhooks_pb2.RotateWebhookSecretResponse:
        webhook, secret = await self._webhooks.rotate(
            call.scope, _webhook_id(request.webhook_id), _previous_secret_ttl(request)
        )
        return webhooks_pb2.RotateWebhookSecretResponse(webhook=webhook_to_proto(webhook), secret=secret)

    async def SendTestEvent(
        self, request: webhooks_pb2.SendTestEventRequest, call: CallContext
    ) -> webhooks_pb2.SendTestEventResponse:
        delivery = await self._webhooks.send_test(call.scope, _webhook_id(request.webhook_id))
        return webhooks_pb2.SendTestEventResponse(delivery=delivery_to_proto(delivery))

    async def ListWebhookDeliveries(
        self, request: webhooks_pb2.ListWebhookDeliveriesRequest, call: CallContext
    ) -> webhooks_pb2.ListWebhookDeliveriesResponse:
        page = await self._webhooks.list_deliveries(
            call.scope, _webhook_id(request.webhook_id), request.page_size, request.page_token
        )
        return webhooks_pb2.ListWebhookDeliveriesResponse(
            deliveries=[delivery_to_proto(d) for d in page.items], next_page_token=page.next_page_token
        )
