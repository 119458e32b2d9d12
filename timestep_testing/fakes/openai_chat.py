"""A fake OpenAI Chat Completions server for tests.

`FakeChatCompletions` is a `ScriptedServer` (``fake.base_url`` = ``http://127.0.0.1:PORT/v1``, the
value for ``OPENAI_BASE_URL``) answering ``POST /v1/chat/completions`` in the real wire format:

* ``"stream": false`` → a ``chat.completion`` object;
* ``"stream": true`` → ``text/event-stream`` of ``data: {chat.completion.chunk}`` frames: the
  role, one content delta per word, each tool call as a first delta (id, name) followed by
  argument pieces, a final chunk with ``finish_reason``, a usage chunk (empty ``choices``) when
  ``stream_options.include_usage`` is set, then ``data: [DONE]``.

Turns and the usage rule are `timestep_testing.fakes.openai_responses`'s (``text()``, ``tool_call()``,
``response(..., usage=Usage(...))``, ``error()``, ``gate()``); usage is reported as
``prompt_tokens`` / ``completion_tokens`` with ``cached_tokens`` and ``reasoning_tokens`` details.
An empty script answers 500 (with ``x-should-retry: false``); other paths 404.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

from aiohttp import web

from timestep_testing.fakes.openai_responses import ErrorTurn, FunctionCall, Message, ModelTurn, Turn, Usage
from timestep_testing.fakes.scripted import JSON, ScriptedServer, json_body

_ARGUMENT_DELTA_SIZE: Final = 16
_NO_RETRY: Final = {"x-should-retry": "false"}


class FakeChatCompletions(ScriptedServer[Turn]):
    """Fake ``POST /v1/chat/completions``; see the module docstring."""

    name = "FakeChatCompletions"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the value for ``OPENAI_BASE_URL``."""
        return f"{self.origin}/v1"

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path.rstrip("/") == "/v1/chat/completions":
            return await self._completions(request)
        self.unmatched.append((request.method, request.path))
        return _error(
            ErrorTurn(404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error")
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        if body is None:
            return _error(ErrorTurn(400, "Request body must be a JSON object", "invalid_request_error"))
        turn = await self._record(request, body)
        if turn is None:
            return _error(
                ErrorTurn(500, self._exhausted("/v1/chat/completions"), "server_error", None, None, _NO_RETRY)
            )
        if not await self._wait_released(turn.hold):
            return _error(
                ErrorTurn(503, "FakeChatCompletions is shutting down", "server_error", None, None, _NO_RETRY)
            )
        if isinstance(turn, ErrorTurn):
            return _error(turn)
        completion_id = self._new_id("chatcmpl")
        model = str(body.get("model", ""))
        calls = [(self._new_id("call") if c.call_id is None else c.call_id, c) for c in _calls(turn)]
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(request, completion_id, model, turn, calls, include_usage)
        text = "".join(item.content for item in turn.items if isinstance(item, Message))
        message: JSON = {"role": "assistant", "content": text or None, "refusal": None}
        if calls:
            message["tool_calls"] = [_tool_call(call_id, call) for call_id, call in calls]
        choice = {"index": 0, "message": message, "finish_reason": _finish(calls), "logprobs": None}
        return web.json_response(
            {
                **_envelope(completion_id, model, "chat.completion"),
                "choices": [choice],
                "usage": _usage(turn.usage),
            }
        )

    async def _stream(
        self,
        request: web.Request,
        completion_id: str,
        model: str,
        turn: ModelTurn,
        calls: list[tuple[str, FunctionCall]],
        include_usage: bool,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        envelope = _envelope(completion_id, model, "chat.completion.chunk")

        async def send(delta: JSON, finish_reason: str | None = None) -> None:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            await _frame(resp, {**envelope, "choices": [choice]})

        try:
            await send({"role": "assistant", "content": ""})
            for item in turn.items:
                if not isinstance(item, Message):
                    continue
                for position, delta in enumerate(item.deltas()):
                    await send({"content": delta})
                    if position == 0 and not await self._wait_released(item.pause_after_first_delta):
                        return resp  # stopping: end without [DONE]
            for index, (call_id, call) in enumerate(calls):
                first = {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}
                await send({"tool_calls": [{"index": index, **first}]})
                arguments = call.arguments_json
                for start in range(0, len(arguments), _ARGUMENT_DELTA_SIZE):
                    piece = arguments[start : start + _ARGUMENT_DELTA_SIZE]
                    await send({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            await send({}, _finish(calls))
            if include_usage:
                await _frame(resp, {**envelope, "choices": [], "usage": _usage(turn.usage)})
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionError:
            pass  # the client went away
        return resp


def _calls(turn: ModelTurn) -> list[FunctionCall]:
    return [item for item in turn.items if isinstance(item, FunctionCall)]


def _tool_call(call_id: str, call: FunctionCall) -> JSON:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    }


def _finish(calls: list[Any]) -> str:
    return "tool_calls" if calls else "stop"


def _envelope(completion_id: str, model: str, kind: str) -> JSON:
    return {"id": completion_id, "object": kind, "created": int(time.time()), "model": model}


def _usage(usage: Usage) -> JSON:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


async def _frame(resp: web.StreamResponse, data: JSON) -> None:
    await resp.write(f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode())


def _error(turn: ErrorTurn) -> web.Response:
    return web.json_response(turn.to_json(), status=turn.status, headers=dict(turn.headers))
