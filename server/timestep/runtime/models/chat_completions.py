"""Pieces shared by providers that speak to their model in Chat Completions terms and hand the
Agents SDK's Chat Completions stream handler a stream of chunks (Ollama, the local model):
`ChatCompletionsModel` implements the SDK's `Model` interface once for them."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, cast

from agents import Model, ModelResponse, ModelSettings, ModelTracing, Tool, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseStreamEvent
from agents.models.chatcmpl_converter import Converter
from agents.models.chatcmpl_stream_handler import ChatCmplStreamHandler
from agents.models.fake_id import FAKE_RESPONSES_ID
from agents.tracing import generation_span
from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessage
from openai.types.responses import Response
from openai.types.responses.response_prompt_param import ResponsePromptParam


@dataclass(frozen=True)
class ModelCall:
    """What the Agents SDK asks of a model in one call."""

    system_instructions: str | None
    input: str | list[TResponseInputItem]
    model_settings: ModelSettings
    tools: list[Tool]
    output_schema: AgentOutputSchemaBase | None
    handoffs: list[Handoff]


class ChatCompletionsModel(Model, ABC):
    """A model that answers a call with one Chat Completions message, or streams it as chunks.
    The SDK's two entry points, the generation span with its usage and the conversion to
    Responses items are here; a provider says how to complete and how to stream."""

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The model's name as it was asked for: in spans, items' provider data and stream events."""

    @abstractmethod
    async def complete(self, call: ModelCall) -> tuple[ChatCompletionMessage, Usage]:
        """The assistant's whole reply, and the call's usage."""

    @abstractmethod
    def stream_chunks(
        self, call: ModelCall
    ) -> AbstractAsyncContextManager[AsyncIterator[ChatCompletionChunk]]:
        """The assistant's reply as Chat Completions chunks, the last with the call's usage."""

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        call = ModelCall(system_instructions, input, model_settings, tools, output_schema, handoffs)
        with generation_span(model=self.model_name, disabled=tracing.is_disabled()) as span:
            message, usage = await self.complete(call)
            span.span_data.usage = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
        items = Converter.message_to_output_items(message, provider_data={"model": self.model_name})
        return ModelResponse(output=items, usage=usage, response_id=None)

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        call = ModelCall(system_instructions, input, model_settings, tools, output_schema, handoffs)
        with generation_span(model=self.model_name, disabled=tracing.is_disabled()) as span:
            async with self.stream_chunks(call) as chunks:
                async for event in ChatCmplStreamHandler.handle_stream(
                    initial_response(self.model_name, model_settings),
                    cast(AsyncStream[ChatCompletionChunk], chunks),
                    model=self.model_name,
                ):
                    if event.type == "response.completed" and event.response.usage is not None:
                        span.span_data.usage = {
                            "input_tokens": event.response.usage.input_tokens,
                            "output_tokens": event.response.usage.output_tokens,
                        }
                    yield event


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
