"""Model routing over gRPC: runs on OpenAI and Ollama models chosen by name (the agent's model or
CreateRun.model), streaming and human-in-the-loop on Ollama, provider failures as run errors,
and no API key anywhere in what the service stores or logs."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from agents import Agent
from timestep.examples.agents import AGENTS, get_weather, send_email
from timestep.runtime.providers import ModelConfig
from timestep.runtime.registry import AgentRegistry
from timestep.runtime.tools import web_search
from timestep_client import RunStatus, TimestepClient

from tests.conftest import TEST_API_KEY, StartService
from timestep_testing.fakes.firecrawl import FakeFirecrawl, hit, results
from timestep_testing.fakes.ollama import FakeOllama
from timestep_testing.fakes.openai_responses import FakeOpenAI, error, text, tool_call
from timestep_testing.harness import assert_no_secret_anywhere
from timestep_testing.helpers import (
    EMAIL_ARGS,
    EMAIL_SENT,
    EventStream,
    assert_usage,
    collect_events,
    is_kind,
    of_kind,
    pending,
    statuses,
)

OLLAMA_MODEL = "ollama/llama3.2"
OLLAMA_KEY = "ollama-secret-key-5c1d"
FIRECRAWL_KEY = "fc-secret-key-9e2a"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# ----- routing -------------------------------------------------------------------------------


async def test_each_model_name_routes_to_its_provider_and_an_unknown_prefix_fails_the_run(
    client: TimestepClient, fake_openai: FakeOpenAI, fake_ollama: FakeOllama
) -> None:
    fake_openai.script(text("From the agent's model."), text("From openai/."))
    fake_ollama.script(text("From Ollama."))

    default = await client.create_run("assistant", "Hi", wait=True)
    explicit = await client.create_run("assistant", "Hi", model="openai/gpt-4.1-mini", wait=True)
    local = await client.create_run("assistant", "Hi", model=OLLAMA_MODEL, wait=True)
    unknown = await client.create_run("assistant", "Hi", model="mistral/large", wait=True)

    assert [r.final_output for r in (default, explicit, local)] == [
        "From the agent's model.",
        "From openai/.",
        "From Ollama.",
    ]
    assert [r["model"] for r in fake_openai.requests] == ["gpt-4.1", "gpt-4.1-mini"]
    assert [r["model"] for r in fake_ollama.requests] == ["llama3.2"]
    assert unknown.status == RunStatus.RUN_STATUS_FAILED
    assert unknown.error.code == "model_not_configured"
    assert "ollama/, openai/" in unknown.error.message


async def test_the_per_run_model_applies_to_every_agent_of_the_run_also_after_a_handoff(
    client: TimestepClient, fake_openai: FakeOpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.script(tool_call("transfer_to_billing", {}), text("Billing here."))

    run = await client.create_run("assistant", "Refund please", model=OLLAMA_MODEL, wait=True)

    assert run.final_output == "Billing here."
    assert run.current_agent == "billing"
    assert fake_openai.requests == []
    assert len(fake_ollama.requests) == 2


async def test_an_ollama_model_needs_no_openai_key_while_an_openai_model_fails_saying_which_key(
    start_service: StartService, fake_ollama: FakeOllama
) -> None:
    fake_ollama.script(text("Local answer."))
    config = ModelConfig(openai_api_key="", ollama_host=fake_ollama.base_url)

    # The example agents on OpenAI, as a service given them explicitly has them (by default, a
    # service without OpenAI runs them on the local model).
    async with (
        start_service(config, registry=AgentRegistry(AGENTS)) as service,
        TimestepClient(f"127.0.0.1:{service.port}") as client,
    ):
        local = await client.create_run("assistant", "Hi", model=OLLAMA_MODEL, wait=True)
        remote = await client.create_run("assistant", "Hi", wait=True)

    assert local.status == RunStatus.RUN_STATUS_COMPLETED
    assert local.final_output == "Local answer."
    assert remote.status == RunStatus.RUN_STATUS_FAILED
    assert remote.error.code == "model_not_configured"
    assert "OPENAI_API_KEY" in remote.error.message


# ----- streaming and human in the loop on Ollama ---------------------------------------------


async def test_text_deltas_from_an_ollama_model_arrive_live_over_grpc(
    client: TimestepClient, fake_ollama: FakeOllama
) -> None:
    rest = asyncio.Event()
    fake_ollama.script(text("Streaming from a local model.", pause_after_first_delta=rest))
    run = await client.create_run("assistant", "Stream something", model=OLLAMA_MODEL)

    async with EventStream(client, run.id) as stream:
        first = await stream.wait_for(is_kind("text_delta"))
        assert first.text_delta.delta == "Streaming"
        assert first.text_delta.agent == "assistant"
        assert (await client.get_run(run.id)).status == RunStatus.RUN_STATUS_RUNNING
        rest.set()
        await stream.rest()

    deltas = [e.text_delta.delta for e in stream.received if is_kind("text_delta")(e)]
    assert "".join(deltas) == "Streaming from a local model."
    final = await client.get_run(run.id)
    assert final.final_output == "Streaming from a local model."
    assert_usage(final, text("Streaming from a local model."))


async def test_text_deltas_from_an_openai_model_arrive_live_over_grpc(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    rest = asyncio.Event()
    fake_openai.script(text("Streaming from OpenAI.", pause_after_first_delta=rest))
    run = await client.create_run("assistant", "Stream something", model="openai/gpt-4.1")

    async with EventStream(client, run.id) as stream:
        first = await stream.wait_for(is_kind("text_delta"))
        assert first.text_delta.delta == "Streaming"
        assert (await client.get_run(run.id)).status == RunStatus.RUN_STATUS_RUNNING
        rest.set()
        await stream.rest()

    deltas = [e.text_delta.delta for e in stream.received if is_kind("text_delta")(e)]
    assert "".join(deltas) == "Streaming from OpenAI."


async def test_an_ollama_tool_call_that_needs_approval_completes_the_full_hitl_cycle(
    client: TimestepClient, fake_openai: FakeOpenAI, fake_ollama: FakeOllama
) -> None:
    call = tool_call("send_email", EMAIL_ARGS)
    answer = text("I emailed Bob.")
    fake_ollama.script(call)

    run = await client.create_run("assistant", "Tell Bob I'm late", model=OLLAMA_MODEL, wait=True)

    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    [interruption] = pending(run)
    assert interruption.tool_name == "send_email"
    assert interruption.call_id.startswith("call_")
    await client.approve(run.id, interruption.id)
    fake_ollama.script(answer)
    run = await client.resume(run.id, wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    assert run.final_output == "I emailed Bob."
    events = await collect_events(client, run.id)
    [output] = of_kind(events, "tool_output")
    assert (output.call_id, output.output) == (interruption.call_id, EMAIL_SENT)
    tool_message = fake_ollama.requests[1]["messages"][-1]
    assert tool_message == {
        "role": "tool",
        "content": EMAIL_SENT,
        "tool_name": "send_email",
        "tool_call_id": interruption.call_id,
    }
    assert statuses(events)[-1] == RunStatus.RUN_STATUS_COMPLETED
    assert fake_openai.requests == []
    assert_usage(run, call, answer)


# ----- provider failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message", "code", "hint"),
    [
        (404, 'model "llama3.2" not found, try pulling it first', "model_not_found", "ollama pull llama3.2"),
        (401, "unauthorized", "model_auth", "ollama signin"),
        (500, "llama runner process has terminated", "model_error", "llama runner process"),
    ],
)
async def test_ollama_errors_fail_the_run_with_a_clear_error(
    client: TimestepClient, fake_ollama: FakeOllama, status: int, message: str, code: str, hint: str
) -> None:
    fake_ollama.script(error(status, message))

    run = await client.create_run("assistant", "Hi", model=OLLAMA_MODEL, wait=True)

    assert run.status == RunStatus.RUN_STATUS_FAILED
    assert run.error.code == code
    assert hint in run.error.message
    [event] = of_kind(await collect_events(client, run.id), "error")
    assert (event.code, event.message) == (run.error.code, run.error.message)


async def test_an_ollama_rate_limit_is_retried_then_reported(
    client: TimestepClient, fake_ollama: FakeOllama
) -> None:
    limited = error(429, "rate limit exceeded", headers={"Retry-After": "0"})
    fake_ollama.script(limited, limited, limited)

    run = await client.create_run("assistant", "Hi", model=OLLAMA_MODEL, wait=True)

    assert run.error.code == "model_rate_limited"
    assert len(fake_ollama.requests) == 3


async def test_runs_of_one_service_share_its_connection_to_ollama(start_service: StartService) -> None:
    async with FakeOllama(keep_alive=True) as ollama:
        ollama.script(text("First."), text("Second."))
        async with (
            start_service(
                ModelConfig(openai_api_key="", ollama_host=ollama.base_url), registry=AgentRegistry(AGENTS)
            ) as service,
            TimestepClient(f"127.0.0.1:{service.port}") as client,
        ):
            runs = [
                await client.create_run("assistant", "Hi", model=OLLAMA_MODEL, wait=True) for _ in range(2)
            ]

    assert [run.final_output for run in runs] == ["First.", "Second."]
    first, second = ollama.peers
    assert second == first, "the second run's model call reuses the first run's connection"


async def test_an_unreachable_ollama_fails_the_run_naming_the_host(start_service: StartService) -> None:
    host = f"http://127.0.0.1:{closed_port()}"

    async with (
        start_service(ModelConfig(ollama_host=host), registry=AgentRegistry(AGENTS)) as service,
        TimestepClient(f"127.0.0.1:{service.port}") as client,
    ):
        run = await client.create_run("assistant", "Hi", model=OLLAMA_MODEL, wait=True)

    assert run.status == RunStatus.RUN_STATUS_FAILED
    assert run.error.code == "model_unreachable"
    assert host in run.error.message
    assert "OLLAMA_HOST" in run.error.message


@pytest.mark.parametrize(
    ("status", "code", "hint"),
    [
        (401, "model_auth", "OPENAI_API_KEY"),
        (404, "model_not_found", "model name"),
        (429, "model_rate_limited", "429"),
    ],
)
async def test_openai_errors_fail_the_run_with_a_clear_error(
    client: TimestepClient, fake_openai: FakeOpenAI, status: int, code: str, hint: str
) -> None:
    failure = error(status, "nope", headers={"retry-after-ms": "1"})
    fake_openai.script(failure, failure, failure)

    run = await client.create_run("assistant", "Hi", wait=True)

    assert run.status == RunStatus.RUN_STATUS_FAILED
    assert run.error.code == code
    assert hint in run.error.message
    assert fake_openai.base_url.removesuffix("/v1") in run.error.message, "the error names the host"
    assert len(fake_openai.requests) == (3 if status == 429 else 1), "only rate limits are retried"


# ----- secrets -------------------------------------------------------------------------------


async def test_no_api_key_appears_in_stored_rows_events_or_logs(
    start_service: StartService,
    fake_openai: FakeOpenAI,
    fake_ollama: FakeOllama,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("FIRECRAWL_API_KEY", FIRECRAWL_KEY)
    researcher = Agent(name="researcher", model="gpt-4.1", tools=[web_search, get_weather, send_email])
    async with FakeOllama() as cloud, FakeFirecrawl() as firecrawl:
        monkeypatch.setenv("FIRECRAWL_BASE_URL", firecrawl.base_url)
        config = ModelConfig(
            openai_api_key=TEST_API_KEY,
            openai_base_url=fake_openai.base_url,
            ollama_host=fake_ollama.base_url,
            ollama_api_key=OLLAMA_KEY,
            ollama_cloud_url=cloud.base_url,
        )
        fake_openai.script(
            tool_call("web_search", {"query": "timestep"}), tool_call("send_email", EMAIL_ARGS)
        )
        firecrawl.script(results(hit("https://timestep.dev", "Timestep")))
        cloud.script(text("From the cloud."), error(401, "unauthorized"))
        async with (
            start_service(config, AgentRegistry([researcher])) as service,
            TimestepClient(f"127.0.0.1:{service.port}") as client,
        ):
            searched = await client.create_run("researcher", "Search", session_id="secrets", wait=True)
            cloudy = await client.create_run("researcher", "Hi", model="ollama/gpt-oss:120b-cloud", wait=True)
            refused = await client.create_run(
                "researcher", "Hi", model="ollama/gpt-oss:120b-cloud", wait=True
            )
            for run in (searched, cloudy, refused):
                await collect_events(client, run.id)
        assert cloud.headers[0]["authorization"] == f"Bearer {OLLAMA_KEY}", "the keys were in use"
        assert firecrawl.headers[0]["authorization"] == f"Bearer {FIRECRAWL_KEY}"

    assert searched.status == RunStatus.RUN_STATUS_INTERRUPTED
    assert cloudy.final_output == "From the cloud."
    assert refused.error.code == "model_auth"
    scanned = await assert_no_secret_anywhere(
        database_url, [TEST_API_KEY, OLLAMA_KEY, FIRECRAWL_KEY], logs=caplog.text
    )
    assert {"public.runs", "public.run_events", "public.session_items", "public.model_calls"} <= set(scanned)
