"""A fake Ollama server for tests: Ollama's native chat API.

`FakeOllama` is a `ScriptedServer` (127.0.0.1, ephemeral port; ``fake.base_url`` is what goes
into ``OLLAMA_HOST``) answering ``POST /api/chat`` the way Ollama does:

* ``"stream": false`` → one JSON object with the whole ``message`` and ``"done": true``;
* otherwise (Ollama streams by default) → ``application/x-ndjson``, one JSON object per line:
  a line per text delta (``message.content``), a line per tool call (``message.tool_calls``,
  arguments as a JSON *object*), then a final line with ``"done": true``, ``done_reason`` and
  the token counts ``prompt_eval_count`` / ``eval_count``.

Tool calls carry an ``id`` only when the script gives a ``call_id``: Ollama may omit ids, and
clients must then make their own.

Turns are `timestep_testing.fakes.openai_responses`'s: ``text()``, ``tool_call()``, ``tool_calls()``,
``response()``, ``gate()`` and ``error(status, message, headers=...)``, which answers Ollama's
error shape ``{"error": message}`` (e.g. 404 ``model "x" not found, try pulling it first``,
401 ``unauthorized``, 429 with ``Retry-After``). Usage follows FakeOpenAI's rule: 10 input
tokens per request, output tokens = words of text + 5 per tool call, so
`timestep_testing.helpers.assert_usage` works for both.

An empty script answers 500 (Ollama's clients do not retry it); any other path answers 404
``404 page not found`` like Ollama's router.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from timestep_testing.fakes.openai_responses import ErrorTurn, FunctionCall, Message, ModelTurn, Turn
from timestep_testing.fakes.scripted import JSON, ScriptedServer, json_body

FAKE_DURATION_NS: Final = 1_000_000


class FakeOllama(ScriptedServer[Turn]):
    """Fake ``POST /api/chat``; see the module docstring."""

    name = "FakeOllama"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, the value for ``OLLAMA_HOST``."""
        return self.origin

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path.rstrip("/") == "/api/chat":
            return await self._chat(request)
        self.unmatched.append((request.method, request.path))
        return web.Response(status=404, text="404 page not found")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        if body is None:
            return _error(400, "invalid request: the body must be a JSON object")
        turn = await self._record(request, body)
        if turn is None:
            return _error(500, self._exhausted("/api/chat"))
        if not await self._wait_released(turn.hold):
            return _error(503, "FakeOllama is shutting down")
        if isinstance(turn, ErrorTurn):
            return _error(turn.status, turn.message, turn.headers)
        model = str(body.get("model", ""))
        if body.get("stream", True) is False:
            for item in turn.items:
                pause = item.pause_after_first_delta if isinstance(item, Message) else None
                if not await self._wait_released(pause):
                    return _error(503, "FakeOllama is shutting down")
            text = "".join(item.content for item in turn.items if isinstance(item, Message))
            calls = [_tool_call(item) for item in turn.items if isinstance(item, FunctionCall)]
            return web.json_response(_final(model, turn, _message(text, calls)))
        return await self._stream(request, model, turn)

    async def _stream(self, request: web.Request, model: str, turn: ModelTurn) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)

        async def line(data: JSON) -> None:
            await resp.write(json.dumps(data, separators=(",", ":")).encode() + b"\n")

        try:
            for item in turn.items:
                if isinstance(item, FunctionCall):
                    await line(_chunk(model, _message("", [_tool_call(item)])))
                    continue
                for position, delta in enumerate(item.deltas()):
                    await line(_chunk(model, _message(delta, [])))
                    if position == 0 and not await self._wait_released(item.pause_after_first_delta):
                        return resp  # stopping: end without the final line
            await line(_final(model, turn, _message("", [])))
            await resp.write_eof()
        except ConnectionError:
            pass  # the client went away
        return resp


def _message(content: str, tool_calls: list[JSON]) -> JSON:
    message: JSON = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _tool_call(call: FunctionCall) -> JSON:
    arguments: Any = json.loads(call.arguments_json)
    entry: JSON = {"function": {"name": call.name, "arguments": arguments}}
    if call.call_id:
        entry["id"] = call.call_id
    return entry


def _chunk(model: str, message: JSON) -> JSON:
    return {"model": model, "created_at": _now(), "message": message, "done": False}


def _final(model: str, turn: ModelTurn, message: JSON) -> JSON:
    usage = turn.usage
    return {
        **_chunk(model, message),
        "done": True,
        "done_reason": "stop",
        "total_duration": 3 * FAKE_DURATION_NS,
        "load_duration": FAKE_DURATION_NS,
        "prompt_eval_count": usage.input_tokens,
        "prompt_eval_duration": FAKE_DURATION_NS,
        "eval_count": usage.output_tokens,
        "eval_duration": FAKE_DURATION_NS,
    }


def _error(status: int, message: str, headers: Any = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=dict(headers or {}))


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
