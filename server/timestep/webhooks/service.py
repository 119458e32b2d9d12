"""Webhooks as the API sees them (create, list, get, delete, rotate, test, deliveries), and the
bodies deliveries send. A webhook belongs to its caller's tenant and hears only its runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

from timestep.domain import Interruption, Page, Run
from timestep.errors import InvalidArgumentError, NotFoundError
from timestep.event_types import InterruptionRaised, RunEvent
from timestep.scope import Scope
from timestep.store.runs import RunStore
from timestep.store.webhooks import WebhookStore
from timestep.webhooks import signing
from timestep.webhooks.destinations import validate_url
from timestep.webhooks.types import RUN_EVENT_TYPES, TEST_EVENT_TYPE, Delivery, Webhook

MAX_DESCRIPTION_LENGTH = 200
# How long a rotated-out secret still signs deliveries (beside the new one) unless the caller says.
DEFAULT_PREVIOUS_SECRET_TTL: Final = timedelta(hours=24)
MAX_PREVIOUS_SECRET_TTL: Final = timedelta(days=30)


def _event_types(requested: Sequence[str]) -> list[str]:
    unknown = [t for t in requested if t not in RUN_EVENT_TYPES]
    if unknown:
        raise InvalidArgumentError(
            f"event_types has unknown types {unknown[:5]}; use any of {', '.join(RUN_EVENT_TYPES)} "
            "(none: all of them).",
            field="event_types",
        )
    return sorted(set(requested), key=RUN_EVENT_TYPES.index) if requested else list(RUN_EVENT_TYPES)


def run_payload(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "agent": run.agent,
        "current_agent": run.current_agent,
        "status": run.status.value,
        "session_id": run.session_id,
        "segment": run.segment_count,
        "final_output": run.final_output,
        "error": {"code": run.error.code, "message": run.error.message} if run.error else None,
        "metadata": run.metadata,
        "create_time": run.create_time.isoformat(),
        "update_time": run.update_time.isoformat(),
    }


def _pending_at(event: RunEvent, interruptions: list[Interruption]) -> list[dict[str, Any]]:
    """The interruptions of the event's segment that were pending when it happened."""
    return [
        InterruptionRaised(i).to_json()
        for i in interruptions
        if i.segment == event.segment and (i.decide_time is None or i.decide_time > event.time)
    ]


class Webhooks:
    def __init__(self, store: WebhookStore, runs: RunStore, *, allow_private: bool) -> None:
        self._store = store
        self._runs = runs
        self._allow_private = allow_private

    def validate_url(self, url: str, field: str = "url") -> str:
        return validate_url(url, allow_private=self._allow_private, field=field)

    async def create(
        self, scope: Scope, url: str, event_types: Sequence[str], description: str = ""
    ) -> tuple[Webhook, str]:
        """A new webhook of the caller's tenant, and its secret (shown to the caller only now)."""
        assert scope.only is not None, "a webhook belongs to one tenant"
        self.validate_url(url)
        types = _event_types(event_types)
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise InvalidArgumentError(
                f"description is longer than {MAX_DESCRIPTION_LENGTH} characters.",
                field="description",
                reason="FIELD_TOO_LONG",
            )
        secret = signing.new_secret()
        webhook = await self._store.create(scope.only, url, types, secret, description=description)
        return webhook, secret

    async def create_for_run(self, run: Run, url: str) -> tuple[Webhook, str]:
        """The webhook of one run (CreateRun's webhook_url, validated by the caller first)."""
        secret = signing.new_secret()
        webhook = await self._store.create(run.tenant, url, list(RUN_EVENT_TYPES), secret, run_id=run.id)
        return webhook, secret

    async def get(self, scope: Scope, webhook_id: str) -> Webhook:
        return await self._store.get(scope, webhook_id)

    async def list(self, scope: Scope, page_size: int, page_token: str) -> Page[Webhook]:
        return await self._store.list_webhooks(scope, page_size, page_token)

    async def delete(self, scope: Scope, webhook_id: str) -> None:
        await self._store.delete(scope, webhook_id)

    async def rotate(
        self, scope: Scope, webhook_id: str, previous_secret_ttl: timedelta | None = None
    ) -> tuple[Webhook, str]:
        """A new secret for the webhook (shown to the caller only now); the one it replaces is
        still accepted for `previous_secret_ttl` (None: DEFAULT_PREVIOUS_SECRET_TTL; checked by
        the caller to be from 0 to MAX_PREVIOUS_SECRET_TTL)."""
        ttl = DEFAULT_PREVIOUS_SECRET_TTL if previous_secret_ttl is None else previous_secret_ttl
        secret = signing.new_secret()
        return await self._store.rotate(scope, webhook_id, secret, ttl), secret

    async def send_test(self, scope: Scope, webhook_id: str) -> Delivery:
        return await self._store.create_test_delivery(scope, webhook_id)

    async def list_deliveries(
        self, scope: Scope, webhook_id: str, page_size: int, page_token: str
    ) -> Page[Delivery]:
        return await self._store.list_deliveries(scope, webhook_id, page_size, page_token)

    async def body(self, delivery: Delivery) -> bytes | None:
        """What every attempt of `delivery` sends: {"type", "timestamp", "data"}; None when its
        run is gone (deleted meanwhile), so there is nothing to tell."""
        data: dict[str, Any]
        if delivery.event_type == TEST_EVENT_TYPE:
            timestamp, data = delivery.create_time, {"webhook_id": delivery.webhook_id}
        else:
            try:
                run = await self._runs.get_run(Scope.ALL, delivery.run_id)
            except NotFoundError:
                return None
            events = await self._runs.events.list_events(delivery.run_id, delivery.sequence - 1, limit=1)
            if not events:
                return None
            event = events[0]
            timestamp, data = event.time, {"run": run_payload(run)}
            if delivery.event_type == "run.interrupted":
                data["interruptions"] = _pending_at(event, run.interruptions)
            elif delivery.event_type == "interruption.expired":
                data["interruption"] = event.payload
        document = {"type": delivery.event_type, "timestamp": timestamp.isoformat(), "data": data}
        # ASCII: a lone surrogate (content is data) stays a valid "\udXXX" escape.
        return json.dumps(document, separators=(",", ":")).encode()
