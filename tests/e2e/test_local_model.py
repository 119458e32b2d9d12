"""The local model through the real service over gRPC, with real llama.cpp and the packaged Gemma 3
270M: with no OpenAI configured the example agents run on it; the assistant pauses on its forced
send_email call, and an approval (or a rejection) lets the run finish with streamed tokens and
recorded usage. A tiny model: the tests assert structure, never wording.

The unhappy paths that need no llama.cpp (no such file, not a GGUF file) run in every suite; a
file llama.cpp cannot load, and the real model's runs, are the `local_model` tier."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import pytest
from timestep.app import TimestepService
from timestep.commands.output import USAGE
from timestep.runtime.providers import ModelConfig
from timestep.settings import ConfigurationError
from timestep_client import RunEvent, RunStatus, TimestepClient

from tests.conftest import TEST_API_KEY, StartService
from tests.e2e.test_readme import python_quickstart
from timestep_testing.fakes.openai_responses import FakeOpenAI
from timestep_testing.harness import REPO, ServeProcess, connect, free_port, run_to_completion
from timestep_testing.helpers import EventStream, arguments, is_stop_status, of_kind, pending

MODEL: Final = "local/gemma3-270m"
# A tiny model on two busy cores: a reply takes seconds, a tool call's JSON a few more.
LOCAL_WAIT: Final = 240.0
EMAIL: Final = "Email bob@example.com that I am late"

local_model = pytest.mark.local_model


@asynccontextmanager
async def local_service(start_service: StartService) -> AsyncIterator[TimestepClient]:
    """The service as `timestep serve` starts without OPENAI_API_KEY: the example agents on the
    local model, loaded at start."""
    async with (
        start_service(ModelConfig(local_threads=2)) as service,
        TimestepClient(f"127.0.0.1:{service.port}") as client,
    ):
        yield client


async def follow(client: TimestepClient, run_id: str, after_sequence: int = 0) -> list[RunEvent]:
    """The run's events (live text deltas included) until it stops."""
    async with EventStream(client, run_id, after_sequence) as stream:
        await stream.wait_for(is_stop_status, LOCAL_WAIT)
        return stream.received


def streamed_text(events: list[RunEvent]) -> str:
    return "".join(delta.delta for delta in of_kind(events, "text_delta"))


@local_model
@pytest.mark.timeout(900)
async def test_the_example_assistant_pauses_on_send_email_and_finishes_after_approval_with_streamed_tokens(
    start_service: StartService,
) -> None:
    async with local_service(start_service) as client:
        agents = {agent.name: agent.model for agent in await client.list_agents()}
        run = await client.create_run("assistant", EMAIL)
        first = await follow(client, run.id)
        paused = await client.get_run(run.id)
        interruption = pending(paused)[0]
        await client.approve(run.id, interruption.id)
        await client.resume(run.id)
        second = await follow(client, run.id, after_sequence=max(e.sequence for e in first))
        done = await client.get_run(run.id)

    assert agents == {"assistant": MODEL, "billing": MODEL}
    assert paused.status == RunStatus.RUN_STATUS_INTERRUPTED
    # A call of the forced tool, with arguments its schema admits.
    assert interruption.tool_name == "send_email"
    called = arguments(interruption)
    assert sorted(called) == ["body", "subject", "to"]
    assert all(isinstance(value, str) for value in called.values())
    assert [tool.tool_name for tool in of_kind(first, "tool_called")] == ["send_email"]
    # Approved: the tool ran, and the next turn answered in text, token by token.
    assert done.status == RunStatus.RUN_STATUS_COMPLETED, done.error
    assert [output.output for output in of_kind(second, "tool_output")] == [
        f"Email to {called['to']} with subject {called['subject']!r} sent."
    ]
    assert done.final_output.strip()
    assert len(of_kind(second, "text_delta")) > 1
    assert streamed_text(second) == done.final_output
    # Two model calls, their tokens counted by the model.
    assert done.usage.requests == 2
    assert done.usage.input_tokens > 0
    assert done.usage.output_tokens > 0
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens


@local_model
@pytest.mark.timeout(900)
async def test_a_rejected_call_of_the_local_model_is_not_made_and_the_run_still_finishes(
    start_service: StartService,
) -> None:
    async with local_service(start_service) as client:
        run = await client.create_run("assistant", EMAIL)
        first = await follow(client, run.id)
        interruption = pending(await client.get_run(run.id))[0]
        await client.reject(run.id, interruption.id, message="Do not email Bob.")
        await client.resume(run.id)
        second = await follow(client, run.id, after_sequence=max(e.sequence for e in first))
        done = await client.get_run(run.id)

    assert done.status == RunStatus.RUN_STATUS_COMPLETED, done.error
    outputs = [output.output for output in of_kind(second, "tool_output")]
    assert outputs == ["Do not email Bob."]
    assert done.final_output.strip()


@local_model
@pytest.mark.timeout(900)
async def test_a_text_run_on_the_local_model_streams_its_tokens_and_reports_usage(
    start_service: StartService,
) -> None:
    async with local_service(start_service) as client:
        run = await client.create_run("billing", "What is a refund?")
        events = await follow(client, run.id)
        done = await client.get_run(run.id)
        usage = await client.get_usage(agent="billing")

    assert done.status == RunStatus.RUN_STATUS_COMPLETED, done.error
    assert done.final_output.strip()
    assert streamed_text(events) == done.final_output
    assert done.usage.requests == 1
    assert done.usage.input_tokens > 0
    assert done.usage.output_tokens > 0
    assert [reported.total.output_tokens for reported in of_kind(events, "usage")] == [
        done.usage.output_tokens
    ]
    assert usage.total.output_tokens >= done.usage.output_tokens


@local_model
async def test_a_gguf_file_llama_cpp_cannot_load_stops_the_start_saying_so(
    start_service: StartService, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(b"GGUF" + bytes(64))

    with pytest.raises(ConfigurationError) as refused:
        async with start_service(ModelConfig(local_model=str(damaged))):
            pass

    assert "local/damaged" in str(refused.value)
    assert "llama.cpp could not load the local model" in str(refused.value)
    assert str(damaged) in str(refused.value)


# ----- without llama.cpp: checked before it is needed -------------------------------------------


async def test_a_local_model_file_that_does_not_exist_stops_the_start_when_it_is_the_default(
    start_service: StartService, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.gguf"

    with pytest.raises(ConfigurationError) as refused:
        async with start_service(ModelConfig(local_model=str(missing))):
            pass

    assert "TIMESTEP_LOCAL_MODEL" in str(refused.value)
    assert f"{missing}, which does not exist" in str(refused.value)


async def test_a_run_on_a_local_model_file_that_is_not_gguf_fails_with_an_actionable_error(
    start_service: StartService, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    # OpenAI is configured, so the local model is not the default: the service starts, and only a
    # run that asks for the local model fails.
    config = ModelConfig(
        openai_api_key=TEST_API_KEY, openai_base_url=fake_openai.base_url, local_model=str(notes)
    )
    async with start_service(config) as service, TimestepClient(f"127.0.0.1:{service.port}") as client:
        run = await client.create_run("assistant", "Hello", model="local/notes", wait=True)

    assert run.status == RunStatus.RUN_STATUS_FAILED
    assert run.error.code == "model_not_configured"
    assert "is not a GGUF model file" in run.error.message
    assert "TIMESTEP_LOCAL_MODEL" in run.error.message
    assert fake_openai.requests == []


async def test_with_openai_configured_the_example_agents_stay_on_openai(
    service: TimestepService,
) -> None:
    async with TimestepClient(f"127.0.0.1:{service.port}") as client:
        agents = {agent.name: agent.model for agent in await client.list_agents()}

    assert agents == {"assistant": "gpt-4.1", "billing": "gpt-4.1"}


# ----- `timestep serve` without OpenAI: what a newcomer sees ------------------------------------


def newcomer_environment(database_url: str, **overrides: str) -> dict[str, str]:
    """This process's environment without any model provider or Timestep setting: no keys."""
    prefixes = ("OPENAI_", "TIMESTEP_", "OLLAMA_", "FIRECRAWL_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.update(PG_CONNECTION_URI=database_url, **overrides)
    return env


async def serve_until_exit(env: dict[str, str]) -> tuple[int, str]:
    """Run `timestep serve` to its exit; returns its code and stderr."""
    code, _, stderr = await run_to_completion(
        sys.executable, "-m", "timestep", "serve", "--port", str(free_port()), env=env, cwd=REPO, limit_s=60
    )
    return code, stderr


async def test_without_llama_cpp_python_the_service_starts_and_says_which_command_installs_it(
    durable_database: str, tmp_path: Path
) -> None:
    # llama-cpp-python as a machine without it has it: its import fails.
    shadow = tmp_path / "llama_cpp"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'llama_cpp'\")\n")
    env = newcomer_environment(durable_database)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    server = ServeProcess("no-llama", free_port(), ["--host", "127.0.0.1"], env)
    await server.start()
    try:
        async with connect(server.address) as client:
            run = await client.create_run("assistant", "Hello", wait=True)
    finally:
        await server.end(signal.SIGTERM)

    assert "cannot run until it is installed" in server.log, server.log
    assert run.status == RunStatus.RUN_STATUS_FAILED
    assert run.error.code == "model_not_configured"
    assert "llama-cpp-python, which is not installed" in run.error.message
    assert "pip install 'timestep[local]'" in run.error.message


async def test_serve_with_a_local_model_file_that_is_not_gguf_exits_with_one_line_naming_it(
    database_url: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")

    code, stderr = await serve_until_exit(newcomer_environment(database_url, TIMESTEP_LOCAL_MODEL=str(notes)))

    assert code == USAGE, stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("timestep:")]
    assert f"TIMESTEP_LOCAL_MODEL names {notes}, which is not a GGUF model file" in line
    assert "Traceback" not in stderr


async def test_a_negative_thread_count_is_a_usage_error(database_url: str) -> None:
    code, _, stderr = await run_to_completion(
        sys.executable,
        "-m",
        "timestep",
        "serve",
        "--local-model-threads",
        "-1",
        env=newcomer_environment(database_url),
        cwd=REPO,
        limit_s=60,
    )

    assert code == USAGE
    assert "--local-model-threads must be 0 (half the cores) or more" in stderr


@local_model
@pytest.mark.timeout(900)
async def test_a_newcomer_without_keys_runs_the_readme_quickstart_to_completion(
    durable_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = ServeProcess(
        "newcomer",
        free_port(),
        ["--host", "127.0.0.1"],
        newcomer_environment(durable_database),
        startup_timeout_s=LOCAL_WAIT,
    )
    await server.start()
    try:
        source = python_quickstart().replace("localhost:50051", server.address)
        namespace: dict[str, Any] = {}
        exec(compile(source.replace("asyncio.run(main())", ""), "README.md", "exec"), namespace)
        await asyncio.wait_for(namespace["main"](), LOCAL_WAIT)
    finally:
        await server.end(signal.SIGTERM)

    printed = capsys.readouterr().out
    assert "the example agents run on the local model (local/gemma3-270m" in server.log
    assert "approving send_email({" in printed
    # After the approval: the completed run's final output.
    assert printed.split("approving send_email(", 1)[1].split("\n", 1)[1].strip(), printed
