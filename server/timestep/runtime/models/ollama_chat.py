"""Ollama's native chat format (`POST /api/chat`) and the SDK's Chat Completions shapes, both
ways: messages out, streamed chunks and final messages back, token counts; and where one model
name is sent (`OllamaTarget`), which the conversion names in its refusals."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from agents import Usage
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessage, ChatCompletionMessageParam

from timestep.domain import RunErrorCode
from timestep.runtime.models.chat_completions import completion_chunk, message_text
from timestep.runtime.models.errors import ModelProviderError

JSON = dict[str, Any]


@dataclass(frozen=True)
class OllamaTarget:
    """Where one model name is sent, under which name, and with which key ("" for none)."""

    requested: str
    model: str
    host: str
    api_key: str = field(repr=False)  # never shown, so logging a target cannot leak it
    cloud: bool = False

    @property
    def where(self) -> str:
        return f"Ollama Cloud ({self.host})" if self.cloud else f"Ollama at {self.host}"


def ollama_messages(messages: Iterable[ChatCompletionMessageParam], target: OllamaTarget) -> list[JSON]:
    """Chat Completions messages (from the SDK's converter) as Ollama chat messages."""
    tool_names: dict[str, str] = {}
    converted: list[JSON] = []
    for message in messages:
        fields = cast(Mapping[str, Any], message)
        role = fields["role"]
        content = fields.get("content")
        if role == "tool":
            call_id = fields.get("tool_call_id", "")
            converted.append(
                {
                    "role": "tool",
                    "content": message_text(content),
                    "tool_name": tool_names.get(call_id, ""),
                    "tool_call_id": call_id,
                }
            )
            continue
        entry: JSON = {"role": "system" if role == "developer" else role, "content": message_text(content)}
        images = _images(content, target)
        if images:
            entry["images"] = images
        thinking = fields.get("reasoning_content") or fields.get("reasoning")
        if thinking:
            entry["thinking"] = thinking
        calls = []
        for call in fields.get("tool_calls") or []:
            function = call["function"]
            tool_names[call["id"]] = function["name"]
            calls.append(
                {"id": call["id"], "function": {"name": function["name"], "arguments": _arguments(function)}}
            )
        if calls:
            entry["tool_calls"] = calls
        converted.append(entry)
    return converted


def _images(content: Any, target: OllamaTarget) -> list[str]:
    """Base64 images of a message's content parts; other non-text parts are refused."""
    if not isinstance(content, list):
        return []
    images = []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "refusal"):
            continue
        url = part.get("image_url", {}).get("url", "") if kind == "image_url" else ""
        if not url.startswith("data:") or "," not in url:
            what = f"an image URL ({url[:60]})" if url else f"a {kind!r} content part"
            raise ModelProviderError(
                RunErrorCode.MODEL_INPUT_UNSUPPORTED,
                f"{target.where} cannot take {what} for {target.requested!r}: Ollama accepts text and "
                "images given as base64 data. Send images as data URLs (input_image with "
                '"image_url": "data:image/png;base64,…").',
            )
        images.append(url.split(",", 1)[1])
    return images


def _arguments(function: Mapping[str, Any]) -> Any:
    """Tool-call arguments as the JSON object Ollama expects (they are a JSON string in items)."""
    raw = function.get("arguments") or "{}"
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _tool_calls(message: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(call id, tool name, arguments JSON) of a reply's tool calls; Ollama may omit ids."""
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        arguments = function.get("arguments", {})
        calls.append(
            (
                call.get("id") or f"call_{uuid.uuid4().hex}",
                function.get("name", ""),
                arguments if isinstance(arguments, str) else json.dumps(arguments),
            )
        )
    return calls


def completion_message(message: Mapping[str, Any]) -> ChatCompletionMessage:
    return ChatCompletionMessage.model_validate(
        {
            "role": "assistant",
            "content": message.get("content") or None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                for call_id, name, arguments in _tool_calls(message)
            ]
            or None,
            # The SDK's converter turns `reasoning` into a reasoning item.
            "reasoning": message.get("thinking") or None,
        }
    )


class ChunkStream:
    """Turns the objects of one NDJSON stream into Chat Completions chunks."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._tool_calls = 0

    def chunk(self, data: Mapping[str, Any]) -> ChatCompletionChunk:
        message = data.get("message") or {}
        calls = _tool_calls(message)
        first_index = self._tool_calls
        self._tool_calls += len(calls)
        done = bool(data.get("done"))
        finish = None
        if done:
            finish = "length" if data.get("done_reason") == "length" else "stop"
            finish = "tool_calls" if self._tool_calls else finish
        return completion_chunk(
            self._id,
            self._model,
            content=message.get("content"),
            tool_calls=calls,
            first_tool_index=first_index,
            reasoning=message.get("thinking"),
            finish_reason=finish,
            usage=ollama_usage(data) if done else None,
        )


def ollama_usage(data: Mapping[str, Any]) -> Usage:
    """Ollama reports prompt_eval_count and eval_count; it has no cached or reasoning counts."""
    input_tokens = int(data.get("prompt_eval_count") or 0)
    output_tokens = int(data.get("eval_count") or 0)
    return Usage(
        requests=1,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )
