"""Pieces shared by providers that speak to their model in Chat Completions terms and hand the
Agents SDK's Chat Completions stream handler a stream of chunks (Ollama, the local model)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from agents import ModelSettings, Usage
from agents.models.fake_id import FAKE_RESPONSES_ID
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import Response


def message_text(content: Any) -> str:
    """The text of a Chat Completions message's content: a string, or its text and refusal parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text") or part.get("refusal") or ""
        for part in content
        if part.get("type") in ("text", "refusal")
    )


def initial_response(model: str, model_settings: ModelSettings) -> Response:
    """The response object a streamed Chat Completions call starts from."""
    return Response(
        id=FAKE_RESPONSES_ID,
        created_at=time.time(),
        model=model,
        object="response",
        output=[],
        tool_choice="auto",
        top_p=model_settings.top_p,
        temperature=model_settings.temperature,
        tools=[],
        parallel_tool_calls=False,
        reasoning=model_settings.reasoning,
    )


def completion_chunk(
    chunk_id: str,
    model: str,
    *,
    content: str | None = None,
    tool_calls: Sequence[tuple[str, str, str]] = (),
    first_tool_index: int = 0,
    reasoning: str | None = None,
    finish_reason: str | None = None,
    usage: Usage | None = None,
) -> ChatCompletionChunk:
    """One chunk of an assistant message: text, reasoning, and (call id, tool name, arguments
    JSON) tool calls numbered from `first_tool_index`; the last chunk has a finish reason and
    the call's usage."""
    calls = [
        {
            "index": first_tool_index + position,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        for position, (call_id, name, arguments) in enumerate(tool_calls)
    ]
    return ChatCompletionChunk.model_validate(
        {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "content": content or None,
                        "tool_calls": calls or None,
                        "reasoning": reasoning or None,
                    },
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            }
            if usage is not None
            else None,
        }
    )
