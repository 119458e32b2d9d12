"""Secrets: after runs that used the OpenAI key and a Firecrawl key, including providers that
echo the key back in their error messages, and were created with a Timestep API key (and a wrong
one tried), no key is in any stored row (DBOS's tables too), in the logs (text and JSON) or in the
streamed events."""

from __future__ import annotations

import logging

import grpc
import pytest
from agents import Agent
from timestep import web_search
from timestep.api.auth import ApiKeys, hash_key
from timestep.observability.logging import JsonFormatter
from timestep.runtime.providers import ModelConfig
from timestep.runtime.registry import AgentRegistry
from timestep_client import RunEvent, RunStatus, TimestepClient

from tests.conftest import FIRECRAWL_TEST_KEY, TEST_API_KEY, StartService
from timestep_testing.fakes.firecrawl import FakeFirecrawl, hit, results
from timestep_testing.fakes.openai_responses import FakeOpenAI, error, text, tool_call
from timestep_testing.harness import assert_no_secret_anywhere
from timestep_testing.helpers import WAIT, collect_events, expect_rpc_error

FIRECRAWL_KEY = FIRECRAWL_TEST_KEY
SERVICE_KEY = "ts_adversarial-tenant-key-77c1e0"
WRONG_KEY = "ts_adversarial-wrong-key-19ab4d"


async def test_no_key_is_stored_logged_or_streamed_even_when_a_provider_echoes_it(
    start_service: StartService,
    model_config: ModelConfig,
    fake_openai: FakeOpenAI,
    firecrawl: FakeFirecrawl,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    researcher = Agent(name="researcher", model="gpt-4.1", tools=[web_search])
    echo = f"Incorrect API key provided: {TEST_API_KEY}; Authorization: Bearer {TEST_API_KEY}"
    fake_openai.script(
        tool_call("web_search", {"query": "timestep"}),
        text("Found it."),
        tool_call("web_search", {"query": "again"}),
        text("The search failed."),
        error(400, echo),
        error(401, echo),
        error(404, echo),
    )
    firecrawl.script(
        results(hit("https://timestep.dev", "Timestep")),
        error(401, f"Unauthorized: invalid token {FIRECRAWL_KEY}"),
    )
    events: list[RunEvent] = []
    async with (
        start_service(
            model_config,
            AgentRegistry([researcher]),
            api_keys=ApiKeys.parse([f"acme:{hash_key(SERVICE_KEY)}"]),
        ) as service,
        TimestepClient(f"127.0.0.1:{service.port}", api_key=SERVICE_KEY) as client,
        TimestepClient(f"127.0.0.1:{service.port}", api_key=WRONG_KEY) as intruder,
    ):
        await expect_rpc_error(intruder.create_run("researcher", "Hi"), grpc.StatusCode.UNAUTHENTICATED)
        runs = [
            await client.create_run("researcher", prompt, session_id="secrets", wait=True, timeout=WAIT)
            for prompt in ("Search", "Search again", "Hi", "Hi", "Hi")
        ]
        for run in runs:
            events += await collect_events(client, run.id)
    assert firecrawl.headers[0]["authorization"] == f"Bearer {FIRECRAWL_KEY}", "the keys were in use"
    assert fake_openai.headers[0]["authorization"] == f"Bearer {TEST_API_KEY}"
    assert [run.status for run in runs] == [RunStatus.RUN_STATUS_COMPLETED] * 2 + [
        RunStatus.RUN_STATUS_FAILED
    ] * 3
    assert len(firecrawl.requests) == 2, "both searches reached Firecrawl"
    json_logs = "\n".join(JsonFormatter().format(record) for record in caplog.records)

    scanned = await assert_no_secret_anywhere(
        database_url,
        [TEST_API_KEY, FIRECRAWL_KEY, SERVICE_KEY, WRONG_KEY],
        logs=caplog.text + json_logs,
        events=events,
    )

    assert {
        "public.runs",
        "public.run_events",
        "public.step_journal",
        "dbos.workflow_status",
        "dbos.operation_outputs",
    } <= set(scanned)
