"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every request it
gets (headers and body) and answers with the status the test chose. It can be stopped and
started again on the same port (a receiver that is down for a while).

It verifies nothing itself: tests check signatures with an implementation of Standard Webhooks
that is not the service's (`standardwebhooks`, see `verified`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook as StandardWebhook

from timestep_testing.harness import free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def type(self) -> str:
        return str(self.json["type"])


def verified(received: Received, secret: str) -> Any:
    """The event `received` carries, once `standardwebhooks` has verified its signature with
    `secret` (it raises otherwise)."""
    return StandardWebhook(secret).verify(received.body, received.headers)


@dataclass
class WebhookReceiver:
    port: int = field(default_factory=free_port)
    # What the next requests are answered with (then 200): e.g. [503, 503].
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.statuses.pop(0) if self.statuses else 200
        async with self._changed:
            self.received.append(Received({k.lower(): v for k, v in request.headers.items()}, body))
            self._changed.notify_all()
        return web.Response(status=status, text="ok" if status == 200 else "not now")

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.received if r.type == event_type]

    async def wait_for(self, event_type: str, times: int = 1, timeout: float = 10.0) -> list[Received]:  # noqa: ASYNC109
        """Wait until `times` requests of `event_type` have arrived; returns them."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: len(self.of_type(event_type)) >= times), timeout
                )
            except TimeoutError:
                raise AssertionError(
                    f"no {times} {event_type!r} webhook(s) within {timeout}s: "
                    f"{[r.type for r in self.received]}"
                ) from None
        return self.of_type(event_type)
