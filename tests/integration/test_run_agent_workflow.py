"""The Python library's durable API: run_agent_workflow on DBOS, in this process."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import pytest
from agents import Agent, OpenAIProvider, RunConfig, RunState, function_tool
from timestep import (
    PostgresSession,
    configure_dbos,
    ensure_dbos_launched,
    run_agent_workflow,
    shutdown_dbos,
)
from timestep.examples.agents import assistant

from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call


@pytest.fixture
async def dbos(database_url: str) -> AsyncIterator[None]:
    configure_dbos(database_url, executor_id="library-test")
    ensure_dbos_launched()
    try:
        yield
    finally:
        shutdown_dbos()


def run_config(fake: FakeOpenAI) -> RunConfig:
    provider = OpenAIProvider(api_key="test", base_url=fake.base_url, use_responses=True)
    return RunConfig(model_provider=provider, tracing_disabled=True)


async def test_the_same_workflow_id_returns_the_recorded_result_without_calling_the_model_again(
    dbos: None, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("get_weather", {"city": "Oslo"}), text("It is sunny in Oslo."))
    agent: Agent[None] = assistant

    first = await run_agent_workflow(
        agent, "Weather in Oslo?", workflow_id="weather-oslo", run_config=run_config(fake_openai)
    )
    again = await run_agent_workflow(
        agent, "Weather in Oslo?", workflow_id="weather-oslo", run_config=run_config(fake_openai)
    )

    assert first.final_output == "It is sunny in Oslo."
    assert again == first
    assert len(fake_openai.requests) == 2  # the tool round trip, once


async def test_a_paused_workflow_run_resumes_from_its_state_after_approval(
    dbos: None, fake_openai: FakeOpenAI, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_CONNECTION_URI", database_url)  # where the workflow's session lives
    fake_openai.script(
        tool_call("send_email", {"to": "bob@example.com", "subject": "Late", "body": "Sorry"}),
        text("Email sent."),
    )
    session = PostgresSession("library-workflow-session")
    config = run_config(fake_openai)

    paused = await run_agent_workflow(
        assistant, "Email Bob", session, workflow_id="email-1", run_config=config
    )
    assert [i.tool_name for i in paused.interruptions] == ["send_email"]
    assert paused.state_json is not None
    state = await RunState.from_string(assistant, paused.state_json)
    state.approve(state.get_interruptions()[0])
    done = await run_agent_workflow(assistant, state, session, workflow_id="email-2", run_config=config)

    assert done.final_output == "Email sent."
    assert done.interruptions == []
    outputs = [i for i in fake_openai.requests[-1]["input"] if i.get("type") == "function_call_output"]
    assert "sent" in outputs[0]["output"]


class Ledger:
    """A tool result DBOS could not pickle (it holds a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __str__(self) -> str:
        return "ledger balanced"


@function_tool
def balance_ledger() -> Ledger:
    """Balance the ledger."""
    return Ledger()


async def test_a_tool_result_that_cannot_be_pickled_is_recorded_as_the_model_saw_it(
    dbos: None, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("balance_ledger", {}), text("Balanced."))
    bookkeeper = Agent(name="bookkeeper", instructions="Keep books.", tools=[balance_ledger])

    done = await run_agent_workflow(
        bookkeeper, "Balance it.", workflow_id="ledger-1", run_config=run_config(fake_openai)
    )

    assert done.final_output == "Balanced."
    outputs = [i for i in fake_openai.requests[-1]["input"] if i.get("type") == "function_call_output"]
    assert [o["output"] for o in outputs] == ["ledger balanced"]
