"""The scripted fake server all model and tool fakes share.

A `ScriptedServer` is an ``aiohttp.web`` server on 127.0.0.1 (ephemeral port) in the current
event loop. Tests append *turns* with ``script(...)``; each request to the fake's endpoint is
recorded first (JSON body in ``requests``, lower-cased headers in ``headers``) and then consumes
exactly one turn, FIFO. A turn's ``hold`` event (or any event passed to `_wait_released`) keeps
the answer back until the test sets it; stopping the server releases every held request.
Subclasses implement `_dispatch` and speak their protocol.

Each request's arrival time is recorded too (``times``, ``time.monotonic()``), and the client
address of its connection (``peers``: requests on one kept-alive connection share it). With
``cancel_on_disconnect=True``, a request whose client goes away before it is answered (e.g. a
held one) is recorded in ``abandoned``; `wait_for_abandoned` awaits that.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from types import TracebackType
from typing import Any, Generic, Self, TypeAlias, TypeVar

from aiohttp import web

JSON: TypeAlias = dict[str, Any]
TurnT = TypeVar("TurnT")
# Where a recorded request keeps its index into `requests`.
_INDEX = web.RequestKey("scripted_request_index", int)


class ScriptedServer(Generic[TurnT]):
    name = "fake"
    """Used in messages, e.g. "FakeOllama"."""

    def __init__(self, *, keep_alive: bool = False, cancel_on_disconnect: bool = False) -> None:
        """`keep_alive=False` (the default) answers with ``Connection: close``.

        Clients that pool connections process-wide (the Agents SDK's ``OpenAIProvider`` shares
        one httpx client) would otherwise reuse a connection from an earlier test's closed event
        loop and fail with ``RuntimeError: Event loop is closed``. Enable keep-alive only when all
        clients live in one loop.

        `cancel_on_disconnect=True` stops handling a request as soon as its client disconnects
        (aiohttp's handler cancellation) and records it in ``abandoned``.
        """
        self._keep_alive = keep_alive
        self._cancel_on_disconnect = cancel_on_disconnect
        self.requests: list[JSON] = []
        """Every request body to the fake's endpoint, in arrival order."""
        self.headers: list[dict[str, str]] = []
        """Request headers (lower-cased names), parallel to ``requests``."""
        self.times: list[float] = []
        """Arrival time (``time.monotonic()``) of each request, parallel to ``requests``."""
        self.peers: list[tuple[str, int]] = []
        """Client (host, port) of each request's connection, parallel to ``requests``."""
        self.abandoned: list[int] = []
        """Indexes into ``requests`` of those whose client went away before the answer
        (recorded only with ``cancel_on_disconnect=True``)."""
        self.unmatched: list[tuple[str, str]] = []
        """``(method, path)`` of requests answered with 404."""
        self._script: deque[TurnT] = deque()
        self._received = asyncio.Condition()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._ids = itertools.count(1)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{self.name} is already started")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        app.on_response_prepare.append(self._on_response_prepare)
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=5.0, handler_cancellation=self._cancel_on_disconnect
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._closing.clear()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving; requests still waiting on a hold/pause are aborted."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing.set()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._port

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    # ---------------------------------------------------------------- test API

    def script(self, *turns: TurnT) -> None:
        """Append turns; each request to the endpoint consumes one, FIFO."""
        self._script.extend(turns)

    @property
    def remaining(self) -> int:
        """Number of scripted turns not consumed yet."""
        return len(self._script)

    async def wait_for_requests(self, n: int, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Wait until at least `n` requests to the endpoint have been recorded."""
        async with self._received:
            try:
                await asyncio.wait_for(self._received.wait_for(lambda: len(self.requests) >= n), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"{self.name}: expected {n} request(s) within {timeout}s, got {len(self.requests)}"
                ) from None

    async def wait_for_abandoned(self, n: int, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Wait until the clients of at least `n` requests went away before being answered."""
        if not self._cancel_on_disconnect:
            raise RuntimeError(f"{self.name} records abandoned requests only with cancel_on_disconnect=True")
        async with self._received:
            try:
                await asyncio.wait_for(self._received.wait_for(lambda: len(self.abandoned) >= n), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"{self.name}: expected {n} abandoned request(s) within {timeout}s, "
                    f"got {len(self.abandoned)}"
                ) from None

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except asyncio.CancelledError:
            index = request.get(_INDEX)
            if index is not None and not self._closing.is_set():
                self.abandoned.append(index)
                async with self._received:
                    self._received.notify_all()
            raise

    # ---------------------------------------------------------------- for subclasses

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def _record(self, request: web.Request, body: JSON) -> TurnT | None:
        """Record a request to the endpoint; return the next turn, or None if the script ran out."""
        async with self._received:
            request[_INDEX] = len(self.requests)
            self.requests.append(body)
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
            self.times.append(time.monotonic())
            host, port = request.transport.get_extra_info("peername")[:2] if request.transport else ("", 0)
            self.peers.append((host, port))
            self._received.notify_all()
        return self._script.popleft() if self._script else None

    def _exhausted(self, path: str) -> str:
        number = len(self.requests)
        return f"{self.name} script ran out: request #{number} to {path} has no scripted turn left"

    async def _wait_released(self, event: asyncio.Event | None) -> bool:
        """Wait for `event` (if any); return False if the server is stopping first."""
        if event is None or event.is_set():
            return True
        waiters = {
            asyncio.ensure_future(event.wait()),
            asyncio.ensure_future(self._closing.wait()),
        }
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return event.is_set()

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):032x}"

    async def _on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        if not self._keep_alive:
            response.force_close()


async def json_body(request: web.Request) -> JSON | None:
    """The request's JSON object body, or None if it is not one."""
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
