"""A fake OpenAI Responses API server for tests.

`FakeOpenAI` is a small `aiohttp.web` server bound to 127.0.0.1 on an ephemeral
port, running in the current asyncio loop. Point a client at `fake.base_url`
(``http://127.0.0.1:PORT/v1``, i.e. what goes into ``OPENAI_BASE_URL``) and it
answers ``POST /v1/responses`` in the real wire format: a full ``Response``
object for ``"stream": false`` and a ``text/event-stream`` of the real event
sequence (``response.created`` ... ``response.completed``) for
``"stream": true``.

Turn script model
-----------------
Tests append *turns* with ``fake.script(...)``. Every ``POST /v1/responses``
is recorded first (body in ``fake.requests``, lower-cased headers in
``fake.headers``) and then consumes exactly one turn, FIFO:

* ``text("...")`` - an assistant message (streamed as several deltas);
* ``tool_call(name, {...})`` / ``tool_calls(tool_call(...), ...)`` - one or
  more function calls in a single response (parallel tool calls);
* ``response(...)`` - any mix of messages and function calls in one response;
* ``error(status, message)`` - an HTTP error in OpenAI's error JSON shape.

``gate(turn, event)`` (or ``hold=event``) makes the server wait for ``event``
before answering, keeping a model call deterministically in flight.
``text(..., pause_after_first_delta=event)`` streams one delta, then waits for
``event`` before sending the rest. A request that finds the script empty gets
an HTTP 500 (with ``x-should-retry: false`` so clients fail fast) saying the
script ran out; any other path or method gets a 404 error JSON.

Usage rule
----------
Every successful response carries a deterministic ``usage`` object:

* ``input_tokens = INPUT_TOKENS_PER_REQUEST`` (10) per request, whatever the
  input; ``input_tokens_details.cached_tokens = 0``;
* ``output_tokens`` = number of whitespace-separated words (``str.split()``)
  in the turn's assistant text, plus ``OUTPUT_TOKENS_PER_FUNCTION_CALL`` (5)
  per function call; ``output_tokens_details.reasoning_tokens = 0``;
* ``total_tokens = input_tokens + output_tokens``.

So a run of N model calls has ``input_tokens == 10 * N``. ``ModelTurn.usage``
gives a turn's numbers; pass ``usage=Usage(...)`` to ``response()`` to
override them (e.g. to exercise cached or reasoning tokens).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeAlias, TypeVar

from aiohttp import web

from timestep_testing.fakes.scripted import JSON, ScriptedServer, json_body

__all__ = [
    "DEFAULT_MODEL",
    "INPUT_TOKENS_PER_REQUEST",
    "JSON",
    "OUTPUT_TOKENS_PER_FUNCTION_CALL",
    "ErrorTurn",
    "FakeOpenAI",
    "FunctionCall",
    "Message",
    "ModelTurn",
    "OutputItem",
    "Turn",
    "Usage",
    "error",
    "function_call",
    "gate",
    "message",
    "response",
    "text",
    "tool_call",
    "tool_calls",
]

INPUT_TOKENS_PER_REQUEST: Final = 10
OUTPUT_TOKENS_PER_FUNCTION_CALL: Final = 5
DEFAULT_MODEL: Final = "gpt-fake"
_ARGUMENT_DELTA_SIZE: Final = 16
_NO_RETRY: Final = {"x-should-retry": "false"}


# --------------------------------------------------------------------------- turns


@dataclass(frozen=True)
class Usage:
    """Token usage reported for one response."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_json(self) -> JSON:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class Message:
    """An assistant message output item."""

    content: str
    chunks: int | None = None
    """Number of streamed deltas; ``None`` means one delta per word."""
    pause_after_first_delta: asyncio.Event | None = None
    """When streaming, wait for this event after the first delta is flushed
    (a non-streamed response, having no partial output, waits as a whole)."""

    @property
    def output_tokens(self) -> int:
        return len(self.content.split())

    def deltas(self) -> list[str]:
        """The ``response.output_text.delta`` payloads; they concatenate to ``content``."""
        if not self.content:
            return []
        if self.chunks is not None:
            return _split_evenly(self.content, self.chunks)
        pieces: list[str] = re.findall(r"\s*\S+", self.content)
        tail = self.content[len("".join(pieces)) :]
        if not pieces:
            return [tail]
        pieces[-1] += tail
        return pieces


@dataclass(frozen=True)
class FunctionCall:
    """A function call output item. A ``str`` ``arguments`` is sent verbatim."""

    name: str
    arguments: Mapping[str, Any] | str
    call_id: str | None = None
    """``None``: the server assigns ``call_<n>``."""

    @property
    def output_tokens(self) -> int:
        return OUTPUT_TOKENS_PER_FUNCTION_CALL

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


OutputItem: TypeAlias = Message | FunctionCall


@dataclass(frozen=True)
class ModelTurn:
    """A successful response made of output items."""

    items: tuple[OutputItem, ...]
    hold: asyncio.Event | None = None
    """Wait for this event before sending anything."""
    usage_override: Usage | None = None

    @property
    def usage(self) -> Usage:
        """The usage reported for this turn (see the module docstring)."""
        if self.usage_override is not None:
            return self.usage_override
        output = sum(item.output_tokens for item in self.items)
        return Usage(input_tokens=INPUT_TOKENS_PER_REQUEST, output_tokens=output)


@dataclass(frozen=True)
class ErrorTurn:
    """An HTTP error response in OpenAI's error JSON shape."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    hold: asyncio.Event | None = None

    def to_json(self) -> JSON:
        return _error_body(self.message, self.type, self.code, self.param)


Turn: TypeAlias = ModelTurn | ErrorTurn
TurnT = TypeVar("TurnT", ModelTurn, ErrorTurn)


def message(
    content: str,
    *,
    chunks: int | None = None,
    pause_after_first_delta: asyncio.Event | None = None,
) -> Message:
    """A message output item, for combining with others via `response`."""
    if chunks is not None and chunks < 1:
        raise ValueError("chunks must be >= 1")
    return Message(content, chunks, pause_after_first_delta)


def function_call(name: str, arguments: Mapping[str, Any] | str, call_id: str | None = None) -> FunctionCall:
    """A function call output item, for combining with others via `response`."""
    return FunctionCall(name, arguments, call_id)


def response(
    *parts: OutputItem | ModelTurn,
    hold: asyncio.Event | None = None,
    usage: Usage | None = None,
) -> ModelTurn:
    """One response with several output items, in order; `ModelTurn` parts are flattened."""
    items: list[OutputItem] = []
    for part in parts:
        if isinstance(part, ModelTurn):
            if part.hold is not None or part.usage_override is not None:
                raise ValueError("set hold/usage on the combined response, not on its parts")
            items.extend(part.items)
        else:
            items.append(part)
    return ModelTurn(tuple(items), hold, usage)


def text(
    content: str,
    *,
    chunks: int | None = None,
    pause_after_first_delta: asyncio.Event | None = None,
    hold: asyncio.Event | None = None,
) -> ModelTurn:
    """An assistant message turn."""
    item = message(content, chunks=chunks, pause_after_first_delta=pause_after_first_delta)
    return ModelTurn((item,), hold)


def tool_call(
    name: str,
    arguments: Mapping[str, Any] | str,
    call_id: str | None = None,
    *,
    hold: asyncio.Event | None = None,
) -> ModelTurn:
    """A turn with a single function call."""
    return ModelTurn((function_call(name, arguments, call_id),), hold)


def tool_calls(*calls: FunctionCall | ModelTurn, hold: asyncio.Event | None = None) -> ModelTurn:
    """A turn with several function calls (parallel tool calls)."""
    turn = response(*calls, hold=hold)
    if not turn.items or any(not isinstance(item, FunctionCall) for item in turn.items):
        raise ValueError("tool_calls() takes function calls only; use response() to mix")
    return turn


def error(
    status: int,
    message: str,
    *,
    type: str | None = None,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
    hold: asyncio.Event | None = None,
) -> ErrorTurn:
    """An HTTP error turn. ``type`` defaults to ``server_error`` (5xx),
    ``rate_limit_exceeded`` (429) or ``invalid_request_error``. Pass
    ``headers={"x-should-retry": "false"}`` to stop the openai client retrying."""
    if type is None:
        type = _default_error_type(status)
    return ErrorTurn(status, message, type, code, param, dict(headers or {}), hold)


def gate(turn: TurnT, event: asyncio.Event) -> TurnT:
    """`turn`, but the server waits for `event` before answering."""
    return replace(turn, hold=event)


def _default_error_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    if status == 429:
        return "rate_limit_exceeded"
    return "invalid_request_error"


def _error_body(message: str, type_: str, code: str | None, param: str | None) -> JSON:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _split_evenly(value: str, parts: int) -> list[str]:
    parts = max(1, min(parts, len(value)))
    size, extra = divmod(len(value), parts)
    pieces: list[str] = []
    start = 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        pieces.append(value[start:end])
        start = end
    return pieces


# --------------------------------------------------------------------------- server


class _SSEWriter:
    """Writes ``event: <type>`` / ``data: <json>`` frames with sequence numbers."""

    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response
        self._sequence = itertools.count()

    async def send(self, type_: str, **fields: Any) -> None:
        event = {"type": type_, "sequence_number": next(self._sequence), **fields}
        data = json.dumps(event, separators=(",", ":"))
        await self._response.write(f"event: {type_}\ndata: {data}\n\n".encode())


class FakeOpenAI(ScriptedServer[Turn]):
    """Fake ``POST /v1/responses`` endpoint; see the module docstring."""

    name = "FakeOpenAI"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the value for ``OPENAI_BASE_URL``."""
        return f"{self.origin}/v1"

    # ---------------------------------------------------------------- handlers

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path.rstrip("/") == "/v1/responses":
            return await self._handle_responses(request)
        self.unmatched.append((request.method, request.path))
        return self._error_response(
            404,
            f"Invalid URL ({request.method} {request.path})",
            "invalid_request_error",
            headers=_NO_RETRY,
        )

    async def _handle_responses(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        if body is None:
            return self._error_response(
                400, "Request body must be a JSON object", "invalid_request_error", _NO_RETRY
            )
        turn = await self._record(request, body)
        if turn is None:
            return self._error_response(
                500, self._exhausted("/v1/responses"), "fake_script_exhausted", _NO_RETRY
            )

        if not await self._wait_released(turn.hold):
            return self._stopping_response()
        if isinstance(turn, ErrorTurn):
            return self._error_response(
                turn.status, turn.message, turn.type, turn.headers, turn.code, turn.param
            )
        if body.get("stream") is True:
            return await self._stream(request, body, turn)
        for item in turn.items:
            pause = item.pause_after_first_delta if isinstance(item, Message) else None
            if not await self._wait_released(pause):
                return self._stopping_response()
        resp_id, created_at = self._new_id("resp"), int(time.time())
        output = [self._output_item(item, "completed") for item in turn.items]
        payload = _response_json(body, resp_id, created_at, "completed", output, turn.usage.to_json())
        return web.json_response(payload, headers={"x-request-id": self._new_id("req")})

    async def _stream(self, request: web.Request, body: JSON, turn: ModelTurn) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-request-id": self._new_id("req"),
            }
        )
        await resp.prepare(request)
        sse = _SSEWriter(resp)
        resp_id, created_at = self._new_id("resp"), int(time.time())

        def snapshot(status: str, output: list[JSON], usage: JSON | None) -> JSON:
            return _response_json(body, resp_id, created_at, status, output, usage)

        try:
            await sse.send("response.created", response=snapshot("in_progress", [], None))
            await sse.send("response.in_progress", response=snapshot("in_progress", [], None))
            output: list[JSON] = []
            for index, item in enumerate(turn.items):
                done = self._output_item(item, "completed")
                if isinstance(item, Message):
                    completed = await self._stream_message(sse, index, item, done)
                else:
                    completed = await self._stream_function_call(sse, index, item, done)
                if not completed:
                    return resp  # server stopping: end the stream without a terminal event
                output.append(done)
            final = snapshot("completed", output, turn.usage.to_json())
            await sse.send("response.completed", response=final)
            await resp.write_eof()
        except ConnectionError:
            pass  # client went away
        return resp

    async def _stream_message(self, sse: _SSEWriter, index: int, item: Message, done: JSON) -> bool:
        ids: JSON = {"item_id": done["id"], "output_index": index}
        added = {**done, "status": "in_progress", "content": []}
        await sse.send("response.output_item.added", output_index=index, item=added)
        part: JSON = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        await sse.send("response.content_part.added", **ids, content_index=0, part=part)
        deltas = item.deltas()
        pause = item.pause_after_first_delta
        for position, delta in enumerate(deltas):
            await sse.send("response.output_text.delta", **ids, content_index=0, delta=delta, logprobs=[])
            if position == 0 and not await self._wait_released(pause):
                return False
        if not deltas and not await self._wait_released(pause):
            return False
        await sse.send("response.output_text.done", **ids, content_index=0, text=item.content, logprobs=[])
        await sse.send("response.content_part.done", **ids, content_index=0, part=done["content"][0])
        await sse.send("response.output_item.done", output_index=index, item=done)
        return True

    async def _stream_function_call(
        self, sse: _SSEWriter, index: int, item: FunctionCall, done: JSON
    ) -> bool:
        ids: JSON = {"item_id": done["id"], "output_index": index}
        added = {**done, "status": "in_progress", "arguments": ""}
        await sse.send("response.output_item.added", output_index=index, item=added)
        arguments: str = done["arguments"]
        for start in range(0, len(arguments), _ARGUMENT_DELTA_SIZE):
            delta = arguments[start : start + _ARGUMENT_DELTA_SIZE]
            await sse.send("response.function_call_arguments.delta", **ids, delta=delta)
        await sse.send("response.function_call_arguments.done", **ids, arguments=arguments)
        await sse.send("response.output_item.done", output_index=index, item=done)
        return True

    # ---------------------------------------------------------------- helpers

    def _output_item(self, item: OutputItem, status: str) -> JSON:
        if isinstance(item, Message):
            content: JSON = {
                "type": "output_text",
                "text": item.content,
                "annotations": [],
                "logprobs": [],
            }
            return {
                "type": "message",
                "id": self._new_id("msg"),
                "role": "assistant",
                "status": status,
                "content": [content],
            }
        return {
            "type": "function_call",
            "id": self._new_id("fc"),
            "call_id": item.call_id or self._new_id("call"),
            "name": item.name,
            "arguments": item.arguments_json,
            "status": status,
        }

    def _error_response(
        self,
        status: int,
        message: str,
        type_: str,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> web.Response:
        return web.json_response(
            _error_body(message, type_, code, param),
            status=status,
            headers={"x-request-id": self._new_id("req"), **(headers or {})},
        )

    def _stopping_response(self) -> web.Response:
        return self._error_response(503, "FakeOpenAI is shutting down", "server_error", _NO_RETRY)


def _response_json(
    body: JSON,
    resp_id: str,
    created_at: int,
    status: str,
    output: list[JSON],
    usage: JSON | None,
) -> JSON:
    """A ``Response`` object; request parameters are echoed like the real API does."""
    get = body.get
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": None,
        "instructions": get("instructions"),
        "max_output_tokens": get("max_output_tokens"),
        "max_tool_calls": get("max_tool_calls"),
        "metadata": get("metadata") or {},
        "model": get("model") or DEFAULT_MODEL,
        "output": output,
        "parallel_tool_calls": get("parallel_tool_calls") is not False,
        "previous_response_id": get("previous_response_id"),
        "prompt_cache_key": get("prompt_cache_key"),
        "reasoning": get("reasoning") or {"effort": None, "summary": None},
        "safety_identifier": get("safety_identifier"),
        "service_tier": "default",
        "store": get("store", True),
        "temperature": _or(get("temperature"), 1.0),
        "text": get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": get("tool_choice") or "auto",
        "tools": get("tools") or [],
        "top_logprobs": _or(get("top_logprobs"), 0),
        "top_p": _or(get("top_p"), 1.0),
        "truncation": get("truncation") or "disabled",
        "usage": usage,
        "user": get("user"),
    }


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value
