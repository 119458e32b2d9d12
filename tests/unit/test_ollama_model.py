"""Ollama models through the Agents SDK against a fake Ollama speaking the native chat API:
streaming, tool calls (also ones that need approval), images, usage, where each model name
goes and with which credentials, and every failure as a clear error."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, function_tool
from openai.types.responses import ResponseTextDeltaEvent
from timestep import ModelProviderError, MultiModelProvider, MultiModelProviderMap, OllamaModelProvider

from timestep_testing.fakes.ollama import FakeOllama
from timestep_testing.fakes.openai_responses import INPUT_TOKENS_PER_REQUEST, error, gate, text, tool_call
from timestep_testing.helpers import WAIT

MODEL = "ollama/llama3.2"
CLOUD_KEY = "ollama-test-key-0123"
PIXEL = base64.b64encode(b"\x89PNG fake pixel").decode()


@pytest.fixture
async def ollama() -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as fake:
        yield fake


@pytest.fixture
async def cloud() -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as fake:
        yield fake


def run_config(local: FakeOllama, *, api_key: str = "", cloud: FakeOllama | None = None) -> RunConfig:
    models = MultiModelProviderMap()
    models.add_provider(
        "ollama",
        OllamaModelProvider(
            api_key=api_key,
            base_url=local.base_url,
            cloud_base_url=cloud.base_url if cloud else "https://ollama.invalid",
        ),
    )
    return RunConfig(model_provider=MultiModelProvider(models, openai_api_key=""), tracing_disabled=True)


def agent(**kwargs: Any) -> Agent[Any]:
    return Agent(name="assistant", instructions="Be brief.", model=kwargs.pop("model", MODEL), **kwargs)


@function_tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"Sunny in {city}"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def failure_of(config: RunConfig, model: str = MODEL) -> ModelProviderError:
    with pytest.raises(ModelProviderError) as caught:
        await Runner.run(agent(model=model), "hi", run_config=config)
    return caught.value


# ----- streaming, tools, images, usage -------------------------------------------------------


async def test_text_streams_as_deltas_with_usage(ollama: FakeOllama) -> None:
    ollama.script(text("Hello from a local model."))

    result = Runner.run_streamed(agent(), "Say hello", run_config=run_config(ollama))
    deltas = [
        event.data.delta
        async for event in result.stream_events()
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent)
    ]

    assert deltas == ["Hello", " from", " a", " local", " model."]
    assert result.final_output == "Hello from a local model."
    usage = result.context_wrapper.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (1, INPUT_TOKENS_PER_REQUEST, 5)
    [request] = ollama.requests
    assert request["model"] == "llama3.2"
    assert request["stream"] is True
    assert request["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]


async def test_a_streamed_delta_arrives_before_the_model_has_finished(ollama: FakeOllama) -> None:
    rest = asyncio.Event()
    ollama.script(text("First then the rest", pause_after_first_delta=rest))

    result = Runner.run_streamed(agent(), "Go", run_config=run_config(ollama))
    async for event in result.stream_events():
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
            assert event.data.delta == "First"
            assert not result.is_complete
            rest.set()
            break
    async for _ in result.stream_events():
        pass

    assert result.final_output == "First then the rest"


async def test_a_tool_call_without_an_id_round_trips_with_the_tool_named(ollama: FakeOllama) -> None:
    ollama.script(tool_call("get_weather", {"city": "Paris"}), text("It is sunny in Paris."))

    result = await Runner.run(agent(tools=[get_weather]), "Weather in Paris?", run_config=run_config(ollama))

    assert result.final_output == "It is sunny in Paris."
    first, second = ollama.requests
    assert first["stream"] is False
    assert [tool["function"]["name"] for tool in first["tools"]] == ["get_weather"]
    assistant, tool_result = second["messages"][-2:]
    [call] = assistant["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": {"city": "Paris"}}
    assert call["id"].startswith("call_"), "a call without an id from Ollama gets one of ours"
    assert tool_result == {
        "role": "tool",
        "content": "Sunny in Paris",
        "tool_name": "get_weather",
        "tool_call_id": call["id"],
    }
    assert result.context_wrapper.usage.requests == 2


async def test_streamed_parallel_tool_calls_keep_ollamas_ids(ollama: FakeOllama) -> None:
    ollama.script(
        tool_call("get_weather", {"city": "Oslo"}, call_id="call_oslo"),
        text("Cold."),
    )

    result = Runner.run_streamed(agent(tools=[get_weather]), "Oslo?", run_config=run_config(ollama))
    async for _ in result.stream_events():
        pass

    assert result.final_output == "Cold."
    tool_message = ollama.requests[1]["messages"][-1]
    assert (tool_message["tool_call_id"], tool_message["content"]) == ("call_oslo", "Sunny in Oslo")


async def test_a_tool_that_needs_approval_pauses_and_resumes_on_an_ollama_model(ollama: FakeOllama) -> None:
    sent: list[str] = []

    @function_tool(needs_approval=True)
    def send_email(to: str) -> str:
        """Send an email."""
        sent.append(to)
        return f"sent to {to}"

    assistant = agent(tools=[send_email])
    config = run_config(ollama)
    ollama.script(tool_call("send_email", {"to": "bob@example.com"}))

    paused = await Runner.run(assistant, "Email Bob", run_config=config)

    assert [item.tool_name for item in paused.interruptions] == ["send_email"]
    assert sent == []
    state = paused.to_state()
    state.approve(state.get_interruptions()[0])
    ollama.script(text("Sent."))
    resumed = await Runner.run(assistant, state, run_config=config)
    assert resumed.final_output == "Sent."
    assert sent == ["bob@example.com"]
    assert ollama.requests[1]["messages"][-1]["content"] == "sent to bob@example.com"


async def test_images_in_the_input_are_sent_as_base64(ollama: FakeOllama) -> None:
    ollama.script(text("A tiny picture."))
    items: Any = [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}", "detail": "auto"},
            ],
        }
    ]

    result = await Runner.run(agent(), items, run_config=run_config(ollama))

    assert result.final_output == "A tiny picture."
    assert ollama.requests[0]["messages"][-1] == {
        "role": "user",
        "content": "What is this?",
        "images": [PIXEL],
    }


async def test_an_image_url_is_refused_with_what_to_send_instead(ollama: FakeOllama) -> None:
    items: Any = [
        {"role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/cat.png"}]}
    ]

    with pytest.raises(ModelProviderError) as caught:
        await Runner.run(agent(), items, run_config=run_config(ollama))

    assert caught.value.code == "model_input_unsupported"
    assert "data:image/png;base64" in caught.value.message
    assert ollama.requests == []


# ----- which host, which name, which key -----------------------------------------------------


async def test_local_and_cloud_models_go_to_their_hosts_within_one_process(
    ollama: FakeOllama, cloud: FakeOllama
) -> None:
    config = run_config(ollama, api_key=CLOUD_KEY, cloud=cloud)
    ollama.script(text("local one"), text("local two"))
    cloud.script(text("from the cloud"))

    for model in ("ollama/llama3.2", "ollama/gpt-oss:120b-cloud", "ollama/qwen3:4b"):
        await Runner.run(agent(model=model), "hi", run_config=config)

    assert [r["model"] for r in ollama.requests] == ["llama3.2", "qwen3:4b"]
    assert [r["model"] for r in cloud.requests] == ["gpt-oss:120b"]
    assert cloud.headers[0]["authorization"] == f"Bearer {CLOUD_KEY}"
    assert all("authorization" not in headers for headers in ollama.headers), "the key stays off local hosts"


async def test_without_a_key_no_authorization_header_is_sent(ollama: FakeOllama) -> None:
    ollama.script(text("ok"))

    await Runner.run(agent(model="ollama/gpt-oss:20b-cloud"), "hi", run_config=run_config(ollama))

    assert ollama.requests[0]["model"] == "gpt-oss:20b-cloud"
    assert "authorization" not in ollama.headers[0]


# ----- connections ---------------------------------------------------------------------------


async def test_calls_of_one_provider_share_a_connection_until_it_is_closed() -> None:
    async with FakeOllama(keep_alive=True) as ollama:
        ollama.script(text("one"), text("two"), text("three"))
        provider = OllamaModelProvider(api_key="", base_url=ollama.base_url)
        models = MultiModelProviderMap()
        models.add_provider("ollama", provider)
        config = RunConfig(
            model_provider=MultiModelProvider(models, openai_api_key=""), tracing_disabled=True
        )

        for _ in range(2):
            await Runner.run(agent(), "hi", run_config=config)
        await provider.aclose()
        await Runner.run(agent(), "hi", run_config=config)
        await provider.aclose()

    first, second, after_close = ollama.peers
    assert second == first, "the second call reuses the first call's connection"
    assert after_close != first, "aclose closed the connection; the next call opened another"


# ----- failures ------------------------------------------------------------------------------


async def test_an_unreachable_host_names_the_host_and_how_to_fix_it() -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    models = MultiModelProviderMap()
    models.add_provider("ollama", OllamaModelProvider(api_key="", base_url=host))
    config = RunConfig(model_provider=MultiModelProvider(models, openai_api_key=""), tracing_disabled=True)

    failure = await failure_of(config)

    assert failure.code == "model_unreachable"
    assert host in failure.message
    assert "ollama serve" in failure.message
    assert "OLLAMA_HOST" in failure.message


async def test_an_unknown_model_says_which_model_to_pull(ollama: FakeOllama) -> None:
    ollama.script(error(404, 'model "llama3.2" not found, try pulling it first'))

    failure = await failure_of(run_config(ollama))

    assert failure.code == "model_not_found"
    assert "ollama pull llama3.2" in failure.message
    assert ollama.base_url in failure.message


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_cloud_key_names_the_key_variable(
    ollama: FakeOllama, cloud: FakeOllama, status: int
) -> None:
    cloud.script(error(status, "unauthorized"))

    failure = await failure_of(
        run_config(ollama, api_key=CLOUD_KEY, cloud=cloud), "ollama/gpt-oss:120b-cloud"
    )

    assert failure.code == "model_auth"
    assert "OLLAMA_API_KEY" in failure.message
    assert CLOUD_KEY not in failure.message


async def test_a_local_ollama_refusing_a_cloud_model_says_to_sign_in(ollama: FakeOllama) -> None:
    ollama.script(error(401, "unauthorized"))

    failure = await failure_of(run_config(ollama), "ollama/gpt-oss:120b-cloud")

    assert failure.code == "model_auth"
    assert "ollama signin" in failure.message


async def test_rate_limits_are_retried_with_backoff_then_reported(ollama: FakeOllama) -> None:
    limited = error(429, "too many requests", headers={"Retry-After": "0"})
    ollama.script(limited, limited, limited)

    failure = await failure_of(run_config(ollama))

    assert failure.code == "model_rate_limited"
    assert "after 3 attempts" in failure.message
    assert len(ollama.requests) == 3
    assert ollama.remaining == 0


async def test_a_rate_limit_that_clears_is_invisible_to_the_run(ollama: FakeOllama) -> None:
    ollama.script(error(429, "slow down", headers={"Retry-After": "0"}), text("Made it."))

    result = await Runner.run(agent(), "hi", run_config=run_config(ollama))

    assert result.final_output == "Made it."
    assert len(ollama.requests) == 2


async def test_a_server_error_is_reported_without_retrying(ollama: FakeOllama) -> None:
    ollama.script(error(500, "model requires more system memory than is available"))

    failure = await failure_of(run_config(ollama))

    assert failure.code == "model_error"
    assert "500" in failure.message
    assert "more system memory" in failure.message
    assert len(ollama.requests) == 1


async def test_a_model_call_is_held_in_flight_until_the_fake_answers(ollama: FakeOllama) -> None:
    release = asyncio.Event()
    ollama.script(gate(text("finally"), release))

    run = asyncio.create_task(Runner.run(agent(), "hi", run_config=run_config(ollama)))
    await ollama.wait_for_requests(1, timeout=WAIT)

    assert not run.done()
    release.set()
    assert (await asyncio.wait_for(run, WAIT)).final_output == "finally"
