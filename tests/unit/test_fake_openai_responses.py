"""Drive the real OpenAI Agents SDK (and the raw wire format) against FakeOpenAI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from agents import (
    Agent,
    ModelRetrySettings,
    ModelSettings,
    OpenAIProvider,
    RunConfig,
    Runner,
    function_tool,
)
from openai.types.responses import Response, ResponseStreamEvent, ResponseTextDeltaEvent
from pydantic import TypeAdapter

from timestep_testing.fakes.openai_responses import (
    INPUT_TOKENS_PER_REQUEST,
    OUTPUT_TOKENS_PER_FUNCTION_CALL,
    FakeOpenAI,
    error,
    gate,
    response,
    text,
    tool_call,
    tool_calls,
)

MODEL = "gpt-fake-test"
WAIT = 10.0  # generous upper bound for event waits; never used as a sleep


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def run_config(fake: FakeOpenAI) -> RunConfig:
    provider = OpenAIProvider(api_key="test-key", base_url=fake.base_url, use_responses=True)
    return RunConfig(model_provider=provider, tracing_disabled=True)


def make_agent(**kwargs: Any) -> Agent[Any]:
    return Agent(name="assistant", instructions="Be brief.", model=MODEL, **kwargs)


def no_retry() -> ModelSettings:
    return ModelSettings(retry=ModelRetrySettings(max_retries=0))


def input_items(request: dict[str, Any], item_type: str) -> list[dict[str, Any]]:
    items = request["input"]
    assert isinstance(items, list)
    return [item for item in items if isinstance(item, dict) and item.get("type") == item_type]


# ------------------------------------------------------------------- SDK behaviour


@pytest.mark.asyncio
async def test_non_streamed_text_and_usage(fake: FakeOpenAI) -> None:
    turn = text("The answer is 42.")
    fake.script(turn)

    result = await Runner.run(make_agent(), "What is the answer?", run_config=run_config(fake))

    assert result.final_output == "The answer is 42."
    usage = result.context_wrapper.usage
    assert usage.requests == 1
    assert usage.input_tokens == INPUT_TOKENS_PER_REQUEST
    assert usage.output_tokens == 4 == turn.usage.output_tokens
    assert usage.total_tokens == INPUT_TOKENS_PER_REQUEST + 4
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert len(fake.requests) == 1
    assert fake.requests[0]["model"] == MODEL
    assert not fake.requests[0].get("stream")
    assert fake.remaining == 0


@pytest.mark.asyncio
async def test_streamed_text_deltas(fake: FakeOpenAI) -> None:
    fake.script(text("Streaming works one word at a time."))

    result = Runner.run_streamed(make_agent(), "Stream please", run_config=run_config(fake))
    deltas: list[str] = []
    async for event in result.stream_events():
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
            deltas.append(event.data.delta)

    assert len(deltas) >= 2
    assert "".join(deltas) == "Streaming works one word at a time."
    assert result.final_output == "Streaming works one word at a time."
    assert fake.requests[0]["stream"] is True
    assert result.context_wrapper.usage.output_tokens == 7


@pytest.mark.asyncio
async def test_streamed_text_with_explicit_chunks(fake: FakeOpenAI) -> None:
    fake.script(text("abcdefghij", chunks=3))

    result = Runner.run_streamed(make_agent(), "go", run_config=run_config(fake))
    deltas = [
        event.data.delta
        async for event in result.stream_events()
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent)
    ]

    assert deltas == ["abcd", "efg", "hij"]
    assert result.final_output == "abcdefghij"


@pytest.mark.asyncio
async def test_function_tool_round_trip(fake: FakeOpenAI) -> None:
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Get the weather for a city."""
        calls.append(city)
        return f"Sunny in {city}"

    fake.script(
        tool_call("get_weather", {"city": "Paris"}, call_id="call_weather_1"),
        text("It is sunny in Paris."),
    )

    result = await Runner.run(
        make_agent(tools=[get_weather]), "Weather in Paris?", run_config=run_config(fake)
    )

    assert calls == ["Paris"]
    assert result.final_output == "It is sunny in Paris."
    assert [tool["name"] for tool in fake.requests[0]["tools"]] == ["get_weather"]
    outputs = input_items(fake.requests[1], "function_call_output")
    assert len(outputs) == 1
    assert outputs[0]["call_id"] == "call_weather_1"
    assert outputs[0]["output"] == "Sunny in Paris"
    usage = result.context_wrapper.usage
    assert usage.requests == 2
    assert usage.input_tokens == 2 * INPUT_TOKENS_PER_REQUEST
    assert usage.output_tokens == OUTPUT_TOKENS_PER_FUNCTION_CALL + 5


@pytest.mark.asyncio
async def test_streamed_tool_call_round_trip(fake: FakeOpenAI) -> None:
    calls: list[tuple[int, int]] = []

    @function_tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        calls.append((a, b))
        return a + b

    fake.script(tool_call("add", {"a": 20, "b": 22}), text("20 + 22 = 42"))

    result = Runner.run_streamed(make_agent(tools=[add]), "add", run_config=run_config(fake))
    async for _ in result.stream_events():
        pass

    assert calls == [(20, 22)]
    assert result.final_output == "20 + 22 = 42"
    outputs = input_items(fake.requests[1], "function_call_output")
    assert [output["output"] for output in outputs] == ["42"]


@pytest.mark.asyncio
async def test_tool_needing_approval_interrupts_and_resumes(fake: FakeOpenAI) -> None:
    deleted: list[str] = []

    @function_tool(needs_approval=True)
    def delete_file(path: str) -> str:
        """Delete a file."""
        deleted.append(path)
        return f"deleted {path}"

    agent = make_agent(tools=[delete_file])
    config = run_config(fake)
    fake.script(tool_call("delete_file", {"path": "/tmp/x"}, call_id="call_del"))

    result = await Runner.run(agent, "Delete /tmp/x", run_config=config)

    assert len(result.interruptions) == 1
    assert deleted == []
    state = result.to_state()
    state.approve(state.get_interruptions()[0])
    fake.script(text("Deleted it."))

    resumed = await Runner.run(agent, state, run_config=config)

    assert resumed.final_output == "Deleted it."
    assert deleted == ["/tmp/x"]
    assert len(fake.requests) == 2
    outputs = input_items(fake.requests[1], "function_call_output")
    assert [(o["call_id"], o["output"]) for o in outputs] == [("call_del", "deleted /tmp/x")]


@pytest.mark.asyncio
async def test_parallel_tool_calls_needing_approval(fake: FakeOpenAI) -> None:
    sent: list[str] = []

    @function_tool(needs_approval=True)
    def send_email(to: str) -> str:
        """Send an email."""
        sent.append(to)
        return f"sent to {to}"

    agent = make_agent(tools=[send_email])
    config = run_config(fake)
    fake.script(
        tool_calls(
            tool_call("send_email", {"to": "a@example.com"}, call_id="call_a"),
            tool_call("send_email", {"to": "b@example.com"}, call_id="call_b"),
        )
    )

    result = await Runner.run(agent, "Email a and b", run_config=config)

    assert len(result.interruptions) == 2
    assert sent == []
    state = result.to_state()
    for interruption in state.get_interruptions():
        state.approve(interruption)
    fake.script(text("Both sent."))

    resumed = await Runner.run(agent, state, run_config=config)

    assert resumed.final_output == "Both sent."
    assert sorted(sent) == ["a@example.com", "b@example.com"]
    outputs = input_items(fake.requests[1], "function_call_output")
    assert sorted(o["call_id"] for o in outputs) == ["call_a", "call_b"]


@pytest.mark.asyncio
async def test_http_400_raises_bad_request(fake: FakeOpenAI) -> None:
    fake.script(error(400, "Invalid 'input': bad.", param="input", code="invalid_value"))

    with pytest.raises(openai.BadRequestError) as excinfo:
        await Runner.run(make_agent(), "hi", run_config=run_config(fake))

    assert excinfo.value.status_code == 400
    assert excinfo.value.code == "invalid_value"
    assert excinfo.value.param == "input"
    assert "Invalid 'input': bad." in str(excinfo.value)
    assert len(fake.requests) == 1


@pytest.mark.asyncio
async def test_http_500_raises_without_retries(fake: FakeOpenAI) -> None:
    fake.script(error(500, "The server had an error."))

    with pytest.raises(openai.InternalServerError) as excinfo:
        await Runner.run(make_agent(model_settings=no_retry()), "hi", run_config=run_config(fake))

    assert excinfo.value.status_code == 500
    assert excinfo.value.type == "server_error"
    assert len(fake.requests) == 1


@pytest.mark.asyncio
async def test_streamed_http_error_raises(fake: FakeOpenAI) -> None:
    fake.script(error(429, "Slow down", headers={"x-should-retry": "false"}))

    result = Runner.run_streamed(make_agent(model_settings=no_retry()), "hi", run_config=run_config(fake))
    with pytest.raises(openai.RateLimitError):
        async for _ in result.stream_events():
            pass
    assert len(fake.requests) == 1


@pytest.mark.asyncio
async def test_exhausted_script_fails_loudly(fake: FakeOpenAI) -> None:
    with pytest.raises(openai.InternalServerError, match="script ran out"):
        await Runner.run(make_agent(), "hi", run_config=run_config(fake))

    assert len(fake.requests) == 1  # recorded, and not retried


@pytest.mark.asyncio
async def test_authorization_header_recorded(fake: FakeOpenAI) -> None:
    fake.script(text("ok"))

    await Runner.run(make_agent(), "hi", run_config=run_config(fake))

    assert fake.headers[0]["authorization"] == "Bearer test-key"


@pytest.mark.asyncio
async def test_gate_keeps_model_call_in_flight(fake: FakeOpenAI) -> None:
    release = asyncio.Event()
    fake.script(gate(text("finally"), release))

    run = asyncio.create_task(Runner.run(make_agent(), "hi", run_config=run_config(fake)))
    await fake.wait_for_requests(1, timeout=WAIT)

    assert not run.done()
    release.set()
    result = await asyncio.wait_for(run, WAIT)
    assert result.final_output == "finally"


@pytest.mark.asyncio
async def test_pause_after_first_delta(fake: FakeOpenAI) -> None:
    resume = asyncio.Event()
    fake.script(text("first then the rest", pause_after_first_delta=resume))

    result = Runner.run_streamed(make_agent(), "hi", run_config=run_config(fake))
    deltas: list[str] = []
    async for event in result.stream_events():
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
            deltas.append(event.data.delta)
            if len(deltas) == 1:
                # The server is parked after the first delta: the run is still live.
                assert not result.is_complete
                resume.set()

    assert deltas == ["first", " then", " the", " rest"]
    assert result.final_output == "first then the rest"


@pytest.mark.asyncio
async def test_wait_for_requests_times_out(fake: FakeOpenAI) -> None:
    with pytest.raises(TimeoutError, match="expected 1 request"):
        await fake.wait_for_requests(1, timeout=0.05)


@pytest.mark.asyncio
async def test_stop_releases_held_requests() -> None:
    never = asyncio.Event()
    async with FakeOpenAI() as server, aiohttp.ClientSession() as session:
        server.script(text("never sent", hold=never))
        post = asyncio.create_task(
            session.post(f"{server.base_url}/responses", json={"model": MODEL, "input": "hi"})
        )
        await server.wait_for_requests(1, timeout=WAIT)

        await asyncio.wait_for(server.stop(), WAIT)

        async with await asyncio.wait_for(post, WAIT) as resp:
            assert resp.status == 503


# ------------------------------------------------------------------- wire format


async def read_sse(resp: aiohttp.ClientResponse) -> list[tuple[str, dict[str, Any]]]:
    frames = (await resp.text()).split("\n\n")
    assert frames[-1] == ""
    events: list[tuple[str, dict[str, Any]]] = []
    for frame in frames[:-1]:
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ")
        assert data_line.startswith("data: ")
        events.append((event_line.removeprefix("event: "), json.loads(data_line[6:])))
    return events


@pytest.mark.asyncio
async def test_non_streamed_wire_format_validates(fake: FakeOpenAI) -> None:
    fake.script(response(text("Let me check."), tool_call("lookup", {"q": "x"}, call_id="call_1")))
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url}/responses", json={"model": "gpt-wire", "input": "hi"}) as resp,
    ):
        assert resp.status == 200
        payload = await resp.json()

    parsed = Response.model_validate(payload)  # strict pydantic validation, not construct()
    assert parsed.model == "gpt-wire"
    assert parsed.status == "completed"
    assert parsed.output_text == "Let me check."
    assert [item.type for item in parsed.output] == ["message", "function_call"]
    assert payload["output"][1]["arguments"] == '{"q": "x"}'
    assert payload["output"][1]["call_id"] == "call_1"
    assert payload["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 3 + OUTPUT_TOKENS_PER_FUNCTION_CALL,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 18,
    }


@pytest.mark.asyncio
async def test_streamed_wire_format_sequence(fake: FakeOpenAI) -> None:
    fake.script(response(text("Hi there"), tool_call("lookup", {"q": "x"})))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.base_url}/responses", json={"model": "gpt-wire", "input": "hi", "stream": True}
        ) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        events = await read_sse(resp)

    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    for name, data in events:
        assert data["type"] == name
        adapter.validate_python(data)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert [name for name, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    completed = Response.model_validate(events[-1][1]["response"])
    assert completed.output_text == "Hi there"
    assert completed.usage is not None
    assert completed.usage.total_tokens == 10 + 2 + OUTPUT_TOKENS_PER_FUNCTION_CALL


@pytest.mark.asyncio
async def test_unknown_path_is_404(fake: FakeOpenAI) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{fake.base_url}/models") as resp,
    ):
        assert resp.status == 404
        payload = await resp.json()

    assert set(payload["error"]) == {"message", "type", "param", "code"}
    assert fake.unmatched == [("GET", "/v1/models")]
    assert fake.requests == []
