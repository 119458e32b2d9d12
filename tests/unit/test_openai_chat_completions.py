"""OpenAI models over Chat Completions (MultiModelProvider(openai_use_responses=False), e.g. for
an OpenAI-compatible server without the Responses API), against a fake speaking the real JSON and
SSE formats: streamed deltas, tool calls and usage go through the same routing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from agents import Agent, ModelSettings, RunConfig, Runner, function_tool
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import ResponseTextDeltaEvent
from timestep import MultiModelProvider

from timestep_testing.fakes.openai_chat import FakeChatCompletions
from timestep_testing.fakes.openai_responses import Usage, error, response, text, tool_call


@pytest.fixture
async def chat() -> AsyncIterator[FakeChatCompletions]:
    async with FakeChatCompletions() as fake:
        yield fake


def run_config(chat: FakeChatCompletions) -> RunConfig:
    provider = MultiModelProvider(
        openai_api_key="sk-chat-test", openai_base_url=chat.base_url, openai_use_responses=False
    )
    return RunConfig(model_provider=provider, tracing_disabled=True)


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def agent(**kwargs: Any) -> Agent[Any]:
    # Chat Completions streams report usage only when asked to.
    settings = ModelSettings(include_usage=True)
    return Agent(
        name="calculator", instructions="Be brief.", model="openai/gpt-4.1", model_settings=settings, **kwargs
    )


async def test_streamed_text_deltas_and_usage(chat: FakeChatCompletions) -> None:
    chat.script(
        response(text("Four plus four is eight."), usage=Usage(12, 6, cached_tokens=4, reasoning_tokens=2))
    )

    result = Runner.run_streamed(agent(), "4+4?", run_config=run_config(chat))
    deltas = [
        event.data.delta
        async for event in result.stream_events()
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent)
    ]

    assert "".join(deltas) == "Four plus four is eight."
    assert len(deltas) == 5
    usage = result.context_wrapper.usage
    assert (usage.input_tokens, usage.output_tokens) == (12, 6)
    assert (usage.input_tokens_details.cached_tokens, usage.output_tokens_details.reasoning_tokens) == (4, 2)
    assert chat.requests[0]["model"] == "gpt-4.1"
    assert chat.headers[0]["authorization"] == "Bearer sk-chat-test"


async def test_a_streamed_tool_call_round_trips(chat: FakeChatCompletions) -> None:
    chat.script(tool_call("add", {"a": 20, "b": 22}, call_id="call_add"), text("42"))

    result = Runner.run_streamed(agent(tools=[add]), "20+22?", run_config=run_config(chat))
    async for _ in result.stream_events():
        pass

    assert result.final_output == "42"
    tool_message = chat.requests[1]["messages"][-1]
    assert (tool_message["role"], tool_message["tool_call_id"], tool_message["content"]) == (
        "tool",
        "call_add",
        "42",
    )


async def test_a_non_streamed_tool_call_round_trips(chat: FakeChatCompletions) -> None:
    chat.script(tool_call("add", {"a": 1, "b": 2}), text("3"))

    result = await Runner.run(agent(tools=[add]), "1+2?", run_config=run_config(chat))

    assert result.final_output == "3"
    assert result.context_wrapper.usage.requests == 2
    assert chat.requests[1]["messages"][-1]["content"] == "3"


async def test_errors_have_openais_shape(chat: FakeChatCompletions) -> None:
    chat.script(error(400, "Bad messages.", headers={"x-should-retry": "false"}))

    with pytest.raises(openai.BadRequestError) as caught:
        await Runner.run(agent(), "hi", run_config=run_config(chat))

    assert caught.value.status_code == 400
    assert "Bad messages." in caught.value.message
    assert len(chat.requests) == 1


async def test_the_wire_format_validates_against_the_openai_types(chat: FakeChatCompletions) -> None:
    chat.script(response(text("Hi there"), tool_call("add", {"a": 1, "b": 2})), text("Hello"))
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    streamed = {**request, "stream": True, "stream_options": {"include_usage": True}}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{chat.base_url}/chat/completions", json=request) as resp,
    ):
        completion = ChatCompletion.model_validate(await resp.json())
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{chat.base_url}/chat/completions", json=streamed) as resp,
    ):
        frames = [f.removeprefix("data: ") for f in (await resp.text()).split("\n\n") if f]

    assert completion.choices[0].message.content == "Hi there"
    [call] = completion.choices[0].message.tool_calls or []
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.type == "function"
    assert call.function.arguments == '{"a": 1, "b": 2}'
    assert frames[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(frame) for frame in frames[:-1]]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 11
