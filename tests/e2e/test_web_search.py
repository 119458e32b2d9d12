"""The web_search tool in a served agent: the model calls it, Firecrawl answers, the model reads
the results (or why there are none), and every entry point shows the same parameter schema."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from agents import Agent
from timestep import web_search
from timestep.runtime.providers import ModelConfig
from timestep.runtime.registry import AgentRegistry
from timestep_client import RunStatus, TimestepClient

from tests.conftest import FIRECRAWL_TEST_KEY, StartService
from timestep_testing.fakes.firecrawl import FakeFirecrawl, hit, results
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.helpers import collect_events, function_call_outputs, of_kind

KEY = FIRECRAWL_TEST_KEY
SEARCH = {
    "query": "Python release",
    "user_location": "Berlin, Germany",
    "filters": {"allowed_domains": ["python.org"]},
    "search_context_size": "low",
}


@pytest.fixture
async def researcher_client(
    start_service: StartService, model_config: ModelConfig
) -> AsyncIterator[TimestepClient]:
    researcher = Agent(name="researcher", instructions="Search first.", model="gpt-4.1", tools=[web_search])
    async with (
        start_service(model_config, AgentRegistry([researcher])) as service,
        TimestepClient(f"127.0.0.1:{service.port}") as client,
    ):
        yield client


async def test_the_model_searches_the_web_and_reads_the_results(
    researcher_client: TimestepClient, fake_openai: FakeOpenAI, firecrawl: FakeFirecrawl
) -> None:
    fake_openai.script(tool_call("web_search", SEARCH, call_id="call_search"), text("Python 3.14 is out."))
    firecrawl.script(
        results(
            hit(
                "https://www.python.org/downloads/", "Download Python", "Python 3.14.0 is the newest release."
            ),
            hit("https://news.example.com/python", "Someone's take"),
        )
    )

    run = await researcher_client.create_run("researcher", "What is the latest Python?", wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    assert run.final_output == "Python 3.14 is out."
    assert firecrawl.requests == [
        {"query": "Python release (site:python.org)", "limit": 5, "location": "Berlin, Germany"}
    ]
    sent_back = function_call_outputs(fake_openai.requests[1])["call_search"]
    assert sent_back.startswith("1. Download Python\n   URL: https://www.python.org/downloads/")
    assert "news.example.com" not in sent_back
    [output] = of_kind(await collect_events(researcher_client, run.id), "tool_output")
    assert output.output == sent_back


async def test_without_a_firecrawl_key_the_run_completes_and_the_model_is_told_why(
    researcher_client: TimestepClient, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIRECRAWL_API_KEY", raising=False)
    fake_openai.script(
        tool_call("web_search", SEARCH, call_id="call_search"), text("I cannot search right now.")
    )

    run = await researcher_client.create_run("researcher", "What is the latest Python?", wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    told = function_call_outputs(fake_openai.requests[1])["call_search"]
    assert "FIRECRAWL_API_KEY" in told


async def test_every_entry_point_shows_the_same_parameter_schema(
    researcher_client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(text("Nothing to search."))
    await researcher_client.create_run("researcher", "Hi", wait=True)

    agent = await researcher_client.get_agent("researcher")

    [tool] = agent.tools
    assert json.loads(tool.parameters_json) == web_search.params_json_schema
    [sent] = fake_openai.requests[0]["tools"]
    assert (sent["name"], sent["parameters"], sent["strict"]) == (
        "web_search",
        web_search.params_json_schema,
        True,
    )
