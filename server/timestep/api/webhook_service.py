"""WebhookService: subscriptions of URLs to run events, their secrets and deliveries."""

from __future__ import annotations

from grpc.aio import ServicerContext as Context
from timestep_client.v1 import webhooks_pb2, webhooks_pb2_grpc

from timestep.api import convert, validation
from timestep.api.auth import current_scope
from timestep.api.errors import unary
from timestep.errors import FailedPreconditionError
from timestep.settings import Limits
from timestep.webhooks.service import Webhooks
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


def need_durability() -> FailedPreconditionError:
    return FailedPreconditionError(
        "Webhooks are delivered by durable workflows; this service runs with --no-durability.",
        reason="WEBHOOKS_NEED_DURABILITY",
        subject="timestep.v1.WebhookService",
    )


class WebhookService(webhooks_pb2_grpc.WebhookServiceServicer):  # type: ignore[misc]
    def __init__(self, webhooks: Webhooks | None, limits: Limits) -> None:
        self._hooks = webhooks
        self.limits = limits

    @property
    def _webhooks(self) -> Webhooks:
        if self._hooks is None:
            raise need_durability()
        return self._hooks

    @unary
    async def CreateWebhook(
        self, request: webhooks_pb2.CreateWebhookRequest, context: Context
    ) -> webhooks_pb2.CreateWebhookResponse:
        webhook, secret = await self._webhooks.create(
            current_scope(), request.url, list(request.event_types), request.description
        )
        return webhooks_pb2.CreateWebhookResponse(webhook=webhook_to_proto(webhook), secret=secret)

    @unary
    async def GetWebhook(
        self, request: webhooks_pb2.GetWebhookRequest, context: Context
    ) -> webhooks_pb2.GetWebhookResponse:
        webhook = await self._webhooks.get(current_scope(), _webhook_id(request.webhook_id))
        return webhooks_pb2.GetWebhookResponse(webhook=webhook_to_proto(webhook))

    @unary
    async def ListWebhooks(
        self, request: webhooks_pb2.ListWebhooksRequest, context: Context
    ) -> webhooks_pb2.ListWebhooksResponse:
        page = await self._webhooks.list(current_scope(), request.page_size, request.page_token)
        return webhooks_pb2.ListWebhooksResponse(
            webhooks=[webhook_to_proto(w) for w in page.items], next_page_token=page.next_page_token
        )

    @unary
    async def DeleteWebhook(
        self, request: webhooks_pb2.DeleteWebhookRequest, context: Context
    ) -> webhooks_pb2.DeleteWebhookResponse:
        await self._webhooks.delete(current_scope(), _webhook_id(request.webhook_id))
        return webhooks_pb2.DeleteWebhookResponse()

    @unary
    async def RotateWebhookSecret(
        self, request: webhooks_pb2.RotateWebhookSecretRequest, context: Context
    ) -> webhooks_pb2.RotateWebhookSecretResponse:
        webhook, secret = await self._webhooks.rotate(current_scope(), _webhook_id(request.webhook_id))
        return webhooks_pb2.RotateWebhookSecretResponse(webhook=webhook_to_proto(webhook), secret=secret)

    @unary
    async def SendTestEvent(
        self, request: webhooks_pb2.SendTestEventRequest, context: Context
    ) -> webhooks_pb2.SendTestEventResponse:
        delivery = await self._webhooks.send_test(current_scope(), _webhook_id(request.webhook_id))
        return webhooks_pb2.SendTestEventResponse(delivery=delivery_to_proto(delivery))

    @unary
    async def ListWebhookDeliveries(
        self, request: webhooks_pb2.ListWebhookDeliveriesRequest, context: Context
    ) -> webhooks_pb2.ListWebhookDeliveriesResponse:
        page = await self._webhooks.list_deliveries(
            current_scope(), _webhook_id(request.webhook_id), request.page_size, request.page_token
        )
        return webhooks_pb2.ListWebhookDeliveriesResponse(
            deliveries=[delivery_to_proto(d) for d in page.items], next_page_token=page.next_page_token
        )
