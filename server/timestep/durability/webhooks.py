"""Webhook deliveries as DBOS workflows: each delivery (workflow id = its id, the `webhook-id`
header) is attempted until the receiver answers 2xx, with exponential backoff and jitter between
attempts (durable sleeps), and given up once its waits would pass the retry window. A delivery
in flight survives a restart (its replica recovers it) and the loss of its replica (another one
does); an attempt cut off by a crash is made again, so receivers see a delivery at least once,
always under the same id.

Every replica starts the workflows of new deliveries (created by the database with the events
they tell about): starting one that exists already does nothing, so replicas never deliver an
event twice over.

The signing secret is read from the store at each attempt; it is never a workflow input or a
step output, which DBOS stores.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from dbos import DBOS, SetWorkflowID

from timestep.outages import is_transient
from timestep.periodic import Periodic
from timestep.settings import WebhookSettings
from timestep.store.webhooks import WebhookStore
from timestep.webhooks.client import WebhookClient
from timestep.webhooks.service import Webhooks
from timestep.webhooks.types import DeliveryStatus

log = logging.getLogger(__name__)

DISPATCH_BATCH: Final = 100
DELIVERED: Final = "delivered"
RETRY: Final = "retry"
GONE: Final = "gone"


def retry_delay(settings: WebhookSettings, delivery_id: str, number: int) -> float:
    """The wait after failed attempt `number`: exponential, capped, with jitter (50-100%) that
    is a function of the delivery and the attempt, so a recovered workflow decides as before."""
    base = min(settings.retry_max_s, settings.retry_initial_s * 2.0 ** min(number - 1, 60))
    digest = hashlib.sha256(f"{delivery_id}/{number}".encode()).digest()
    return base * (0.5 + 0.5 * int.from_bytes(digest[:4]) / 2**32)


@dataclass(frozen=True)
class _Bindings:
    store: WebhookStore
    webhooks: Webhooks
    client: WebhookClient
    settings: WebhookSettings
    # The tasks delivering here, stopped before DBOS is (they are recovered later).
    running: set[asyncio.Task[Any]] = field(default_factory=set)


_bindings: _Bindings | None = None


def _bound() -> _Bindings:
    if _bindings is None:
        raise RuntimeError("webhook delivery is not started in this process")
    return _bindings


@DBOS.step(name="timestep.webhook_body")
async def _body(delivery_id: str) -> str | None:
    """The body every attempt sends; None when there is nothing to deliver any more (the
    webhook, or the run the event was about, was deleted)."""
    bindings = _bound()
    delivery = await bindings.store.delivery(delivery_id)
    body = None if delivery is None else await bindings.webhooks.body(delivery)
    return None if body is None else body.decode()


@DBOS.step(name="timestep.webhook_attempt")
async def _attempt(delivery_id: str, number: int, body: str) -> str:
    """Attempt `number` of the delivery (as the workflow counts them, for its backoff; the
    store numbers what it records, repeats after a crash included)."""
    bindings = _bound()
    target = await bindings.store.target(delivery_id)
    if target is None:  # the webhook was deleted
        return GONE
    started = datetime.now(UTC)
    outcome = await bindings.client.send(target, delivery_id, body.encode())
    await bindings.store.record_attempt(delivery_id, started, outcome)
    if not outcome.delivered:
        log.info(
            "webhook delivery %s attempt %d failed: %s",
            delivery_id,
            number,
            outcome.error or f"HTTP {outcome.response_code}",
        )
    return DELIVERED if outcome.delivered else RETRY


@DBOS.step(name="timestep.webhook_finish")
async def _finish(delivery_id: str, status: str) -> None:
    await _bound().store.finish(delivery_id, DeliveryStatus(status))


@DBOS.workflow(name="timestep.deliver_webhook")
async def deliver_webhook(delivery_id: str) -> None:
    bindings = _bound()
    task = asyncio.current_task()
    if task is None:
        await _deliver(delivery_id, bindings.settings)
        return
    bindings.running.add(task)
    try:
        await _deliver(delivery_id, bindings.settings)
    finally:
        bindings.running.discard(task)


async def _deliver(delivery_id: str, settings: WebhookSettings) -> None:
    body = await _body(delivery_id)
    if body is None:
        await _finish(delivery_id, DeliveryStatus.FAILED.value)  # if the webhook is still there
        return
    waited = 0.0
    number = 0
    while True:
        number += 1
        result = await _attempt(delivery_id, number, body)
        if result == DELIVERED:
            await _finish(delivery_id, DeliveryStatus.SUCCEEDED.value)
            return
        if result == GONE:
            return
        delay = retry_delay(settings, delivery_id, number)
        if waited + delay > settings.retry_window_s:
            log.warning("webhook delivery %s given up after %d attempts", delivery_id, number)
            await _finish(delivery_id, DeliveryStatus.FAILED.value)
            return
        waited += delay
        await DBOS.sleep_async(delay)


class WebhookDispatcher:
    """Binds the delivery workflows to this process's components, and starts a workflow for
    each new delivery (every `dispatch_interval_s`), erasing the rotated-out secrets whose
    overlap has ended on the way."""

    def __init__(
        self, store: WebhookStore, webhooks: Webhooks, client: WebhookClient, settings: WebhookSettings
    ) -> None:
        self._store = store
        self._bindings = _Bindings(store, webhooks, client, settings)
        self._rounds = Periodic(
            "timestep webhook dispatcher", settings.dispatch_interval_s, self._dispatch, at_once=True
        )
        self._database_away = False

    def bind(self) -> None:
        """Before DBOS launches: it recovers pending deliveries at once."""
        global _bindings
        _bindings = self._bindings

    @staticmethod
    def unbind() -> None:
        global _bindings
        _bindings = None

    def start(self) -> None:
        self._rounds.start()

    async def stop(self) -> None:
        """Stop dispatching, and stop the deliveries in flight here (they stay pending, and are
        recovered with this replica's other workflows)."""
        await self._rounds.stop()
        running = list(self._bindings.running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def _dispatch(self) -> None:
        try:
            await self._store.erase_expired_secrets()
            waiting = await self._store.undispatched(DISPATCH_BATCH)
            for delivery_id in waiting:
                with SetWorkflowID(delivery_id):
                    await DBOS.start_workflow_async(deliver_webhook, delivery_id)
            if waiting:
                await self._store.mark_dispatched(waiting)
            self._database_away = False
        except Exception as error:
            if not is_transient(error):
                log.exception("webhook dispatch failed; trying again next round")
            elif not self._database_away:
                log.warning("webhook dispatch: the database is unreachable (%s); retrying", error)
            self._database_away = is_transient(error)
