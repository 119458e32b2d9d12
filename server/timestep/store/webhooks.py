"""Webhooks in PostgreSQL: subscriptions (with their signing secrets, which nothing else
stores), deliveries and their attempts. Deliveries of run events are created by a trigger on
`run_events`, in the event's own transaction (migration 0020)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from timestep.domain import Page
from timestep.errors import NotFoundError
from timestep.scope import Scope
from timestep.store.pages import clamp_page_size, decode_page_token, encode_page_token
from timestep.store.retry import retried
from timestep.store.rows import new_id
from timestep.webhooks.types import (
    TEST_EVENT_TYPE,
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryStatus,
    Target,
    Webhook,
)

# The previous secret's expiry is shown only while it has not passed (it may not be erased yet).
_WEBHOOK_COLUMNS = (
    "id, tenant, url, event_types, description, run_id, secret_time, create_time, "
    "CASE WHEN previous_secret_expire_time > clock_timestamp() THEN previous_secret_expire_time END "
    "AS previous_secret_expire_time"
)
_OWNED = "id = $1 AND ($2::text IS NULL OR tenant = $2)"


def webhook_not_found(webhook_id: str) -> NotFoundError:
    return NotFoundError(
        f"No webhook has id {webhook_id!r}. List them with WebhookService.ListWebhooks.",
        reason="WEBHOOK_NOT_FOUND",
    )


def _webhook(row: asyncpg.Record) -> Webhook:
    return Webhook(
        id=row["id"],
        tenant=row["tenant"],
        url=row["url"],
        event_types=list(row["event_types"]),
        description=row["description"],
        create_time=row["create_time"],
        secret_time=row["secret_time"],
        run_id=row["run_id"] or "",
        previous_secret_expire_time=row["previous_secret_expire_time"],
    )


def _delivery(row: asyncpg.Record, attempts: list[Attempt]) -> Delivery:
    return Delivery(
        id=row["id"],
        webhook_id=row["webhook_id"],
        event_type=row["event_type"],
        run_id=row["run_id"] or "",
        sequence=row["sequence"] or 0,
        status=DeliveryStatus(row["status"]),
        create_time=row["create_time"],
        finish_time=row["finish_time"],
        attempts=attempts,
    )


def _attempt(row: dict[str, Any]) -> Attempt:
    return Attempt(
        number=row["number"],
        time=datetime.fromisoformat(row["attempt_time"]),
        response_code=row["response_code"],
        latency_ms=row["latency_ms"],
        error=row["error"],
        response_prefix=row["response_prefix"],
    )


def _page_after(token: str, scope: str) -> tuple[datetime, str] | None:
    return decode_page_token(token, scope, lambda a: (datetime.fromisoformat(a[0]).astimezone(UTC), a[1]))


_DELIVERY_ATTEMPTS = (
    "(SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.number), '[]') FROM webhook_attempts a "
    "WHERE a.delivery_id = d.id) AS attempt_rows"
)


class WebhookStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # ----- subscriptions -----------------------------------------------------------------

    async def create(
        self,
        tenant: str,
        url: str,
        event_types: list[str],
        secret: str,
        *,
        description: str = "",
        run_id: str = "",
    ) -> Webhook:
        row = await self._pool.fetchrow(
            f"""INSERT INTO webhooks (id, tenant, url, event_types, description, run_id, secret)
                VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7) RETURNING {_WEBHOOK_COLUMNS}""",
            new_id("wh"),
            tenant,
            url,
            event_types,
            description,
            run_id,
            secret,
        )
        assert row is not None, "INSERT … RETURNING returns the row"
        return _webhook(row)

    async def get(self, scope: Scope, webhook_id: str) -> Webhook:
        row = await self._pool.fetchrow(
            f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE {_OWNED}", webhook_id, scope.only
        )
        if row is None:
            raise webhook_not_found(webhook_id)
        return _webhook(row)

    async def list_webhooks(self, scope: Scope, page_size: int, page_token: str) -> Page[Webhook]:
        size = clamp_page_size(page_size)
        after = _page_after(page_token, "webhooks")
        rows = await self._pool.fetch(
            f"""SELECT {_WEBHOOK_COLUMNS} FROM webhooks
                WHERE run_id IS NULL AND ($1::text IS NULL OR tenant = $1)
                  AND ($2::timestamptz IS NULL OR (create_time, id) > ($2, $3))
                ORDER BY create_time, id LIMIT $4""",
            scope.only,
            after[0] if after else None,
            after[1] if after else "",
            size + 1,
        )
        items = [_webhook(row) for row in rows[:size]]
        token = (
            encode_page_token("webhooks", [items[-1].create_time.isoformat(), items[-1].id])
            if len(rows) > size
            else ""
        )
        return Page(items, token)

    async def delete(self, scope: Scope, webhook_id: str) -> None:
        if (
            await self._pool.fetchval(
                f"DELETE FROM webhooks WHERE {_OWNED} RETURNING 1", webhook_id, scope.only
            )
            is None
        ):
            raise webhook_not_found(webhook_id)

    async def rotate(self, scope: Scope, webhook_id: str, secret: str, previous_ttl: timedelta) -> Webhook:
        """Make `secret` the webhook's secret; the one it replaces stays accepted (deliveries are
        signed with both) for `previous_ttl`, none if zero. A previous secret from an earlier
        rotation is dropped."""
        overlap = previous_ttl > timedelta(0)
        row = await self._pool.fetchrow(
            f"""UPDATE webhooks SET secret = $3, secret_time = rotation.at,
                    previous_secret = CASE WHEN $4 THEN secret END,
                    previous_secret_expire_time = CASE WHEN $4 THEN rotation.at + $5::interval END
                FROM (SELECT clock_timestamp() AS at) rotation
                WHERE {_OWNED}
                RETURNING {_WEBHOOK_COLUMNS}""",
            webhook_id,
            scope.only,
            secret,
            overlap,
            previous_ttl,
        )
        if row is None:
            raise webhook_not_found(webhook_id)
        return _webhook(row)

    @retried
    async def erase_expired_secrets(self) -> None:
        """Erase the previous secrets whose overlap has ended."""
        await self._pool.execute(
            """UPDATE webhooks SET previous_secret = NULL, previous_secret_expire_time = NULL
               WHERE previous_secret IS NOT NULL AND previous_secret_expire_time <= clock_timestamp()"""
        )

    # ----- deliveries --------------------------------------------------------------------

    async def create_test_delivery(self, scope: Scope, webhook_id: str) -> Delivery:
        await self.get(scope, webhook_id)
        row = await self._pool.fetchrow(
            """INSERT INTO webhook_deliveries (id, webhook_id, event_type)
               VALUES ($1, $2, $3) RETURNING *, '[]'::jsonb AS attempt_rows""",
            new_id("msg"),
            webhook_id,
            TEST_EVENT_TYPE,
        )
        assert row is not None, "INSERT … RETURNING returns the row"
        return _delivery(row, [])

    async def list_deliveries(
        self, scope: Scope, webhook_id: str, page_size: int, page_token: str
    ) -> Page[Delivery]:
        await self.get(scope, webhook_id)
        size = clamp_page_size(page_size)
        token_scope = f"deliveries:{webhook_id}"
        after = _page_after(page_token, token_scope)
        rows = await self._pool.fetch(
            f"""SELECT d.*, {_DELIVERY_ATTEMPTS} FROM webhook_deliveries d
                WHERE d.webhook_id = $1 AND ($2::timestamptz IS NULL OR (d.create_time, d.id) < ($2, $3))
                ORDER BY d.create_time DESC, d.id DESC LIMIT $4""",
            webhook_id,
            after[0] if after else None,
            after[1] if after else "",
            size + 1,
        )
        items = [_delivery(row, [_attempt(a) for a in row["attempt_rows"]]) for row in rows[:size]]
        token = (
            encode_page_token(token_scope, [items[-1].create_time.isoformat(), items[-1].id])
            if len(rows) > size
            else ""
        )
        return Page(items, token)

    @retried
    async def undispatched(self, limit: int) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT id FROM webhook_deliveries WHERE NOT dispatched ORDER BY create_time LIMIT $1", limit
        )
        return [row["id"] for row in rows]

    @retried
    async def mark_dispatched(self, delivery_ids: list[str]) -> None:
        await self._pool.execute(
            "UPDATE webhook_deliveries SET dispatched = true WHERE id = ANY($1::text[])", delivery_ids
        )

    @retried
    async def delivery(self, delivery_id: str) -> Delivery | None:
        row = await self._pool.fetchrow(
            "SELECT *, '[]'::jsonb AS attempt_rows FROM webhook_deliveries WHERE id = $1", delivery_id
        )
        return _delivery(row, []) if row else None

    @retried
    async def target(self, delivery_id: str) -> Target | None:
        """Where an attempt of the delivery goes, with the current secret and the previous one
        while it is accepted (by the database's clock); None once the webhook (and so the
        delivery) is deleted."""
        row = await self._pool.fetchrow(
            """SELECT w.url, w.secret,
                      CASE WHEN w.previous_secret_expire_time > clock_timestamp() THEN w.previous_secret
                      END AS previous_secret
               FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
               WHERE d.id = $1""",
            delivery_id,
        )
        return Target(row["url"], row["secret"], row["previous_secret"] or "") if row else None

    @retried
    async def record_attempt(self, delivery_id: str, started: datetime, outcome: AttemptOutcome) -> None:
        """Record an attempt as the delivery's next one. An attempt repeated after a crash (its
        outcome was recorded here, not yet by the workflow) is recorded again, as what it is:
        another attempt. (Waiting out the database keeps the delivery going; a write whose reply
        was lost may list its attempt twice.)"""
        await self._pool.execute(
            """INSERT INTO webhook_attempts
                   (delivery_id, number, attempt_time, response_code, latency_ms, error, response_prefix)
               SELECT $1, coalesce(max(a.number), 0) + 1, $2, $3, $4, $5, $6
               FROM webhook_deliveries d LEFT JOIN webhook_attempts a ON a.delivery_id = d.id
               WHERE d.id = $1 GROUP BY d.id""",
            delivery_id,
            started,
            outcome.response_code,
            outcome.latency_ms,
            outcome.error,
            outcome.response_prefix,
        )

    @retried
    async def finish(self, delivery_id: str, status: DeliveryStatus) -> None:
        await self._pool.execute(
            """UPDATE webhook_deliveries SET status = $2, finish_time = clock_timestamp()
               WHERE id = $1 AND status = 'pending'""",
            delivery_id,
            status.value,
        )
