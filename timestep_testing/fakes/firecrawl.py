"""A fake Firecrawl server for tests: the search endpoint.

`FakeFirecrawl` is a `ScriptedServer` (``fake.base_url`` is what goes into FIRECRAWL_BASE_URL)
answering ``POST /v2/search`` like Firecrawl's v2 API:

    {"success": true, "data": {"web": [{"url", "title", "description", "position"}, ...]},
     "creditsUsed": N}

Each request consumes one turn: ``results(hit(url, title, description), ...)`` — of which at
most the request's ``limit`` are returned, as Firecrawl does — or ``error(status, message)``
(from `timestep_testing.fakes.openai_responses`), answered as ``{"success": false, "error": message}``.
Script ``error(401, "Unauthorized: Invalid token")`` for a refused key. An empty script answers
500; other paths 404.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, TypeAlias

from aiohttp import web

from timestep_testing.fakes.openai_responses import ErrorTurn
from timestep_testing.fakes.scripted import ScriptedServer, json_body


@dataclass(frozen=True)
class Hit:
    url: str
    title: str
    description: str


@dataclass(frozen=True)
class SearchTurn:
    hits: tuple[Hit, ...]
    hold: asyncio.Event | None = None


FirecrawlTurn: TypeAlias = SearchTurn | ErrorTurn


def hit(url: str, title: str = "", description: str = "") -> Hit:
    return Hit(url, title or url, description)


def results(*hits: Hit) -> SearchTurn:
    """A successful search answering with these results, in order."""
    return SearchTurn(hits)


class FakeFirecrawl(ScriptedServer[FirecrawlTurn]):
    """Fake ``POST /v2/search``; see the module docstring."""

    name = "FakeFirecrawl"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, the value for ``FIRECRAWL_BASE_URL``."""
        return self.origin

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path.rstrip("/") == "/v2/search":
            return await self._search(request)
        self.unmatched.append((request.method, request.path))
        return _error(404, f"Cannot {request.method} {request.path}")

    async def _search(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        if body is None:
            return _error(400, "Bad Request: the body must be a JSON object")
        turn = await self._record(request, body)
        if turn is None:
            return _error(500, self._exhausted("/v2/search"))
        if not await self._wait_released(turn.hold):
            return _error(503, "FakeFirecrawl is shutting down")
        if isinstance(turn, ErrorTurn):
            return _error(turn.status, turn.message, turn.headers)
        limit = body.get("limit", 5)
        hits = turn.hits[:limit] if isinstance(limit, int) else turn.hits
        web_results = [
            {"url": h.url, "title": h.title, "description": h.description, "position": n}
            for n, h in enumerate(hits, start=1)
        ]
        return web.json_response({"success": True, "data": {"web": web_results}, "creditsUsed": len(hits)})


def _error(status: int, message: str, headers: Any = None) -> web.Response:
    return web.json_response({"success": False, "error": message}, status=status, headers=dict(headers or {}))
