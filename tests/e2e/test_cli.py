"""The `timestep` command: `timestep serve` as a real process, configured only through its
command line and environment, serving real clients and stopping cleanly on SIGTERM; and its
help texts.

Every wait reads the process's output or awaits its exit with a timeout; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest
from timestep_client import RunStatus, TimestepClient

from tests.e2e.helpers import WAIT
from tests.fakes.openai_responses import FakeOpenAI, text
from tests.harness import free_port

REPO: Final = Path(__file__).resolve().parents[2]
# Starting imports the Agents SDK and migrates the database: allow more than a plain RPC.
STARTUP_TIMEOUT: Final = 60.0
SHUTDOWN_TIMEOUT: Final = 20.0
CLI_API_KEY: Final = "test"
ENVIRONMENT_VARIABLES: Final = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "PG_CONNECTION_URI",
    "TIMESTEP_DATA_DIR",
    "TIMESTEP_AGENTS",
)


def cli_environment(**overrides: str) -> dict[str, str]:
    prefixes = ("OPENAI_", "TIMESTEP_", "OLLAMA_", "FIRECRAWL_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.pop("PG_CONNECTION_URI", None)
    env.update(overrides)
    return env


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `python -m timestep ARGS` to completion; returns (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "timestep",
        *args,
        cwd=REPO,
        env=env or cli_environment(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), STARTUP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@dataclass
class Served:
    """A running `timestep serve` and what it has printed so far."""

    process: asyncio.subprocess.Process
    port: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


async def _collect(stream: asyncio.StreamReader | None, lines: list[str]) -> None:
    assert stream is not None
    while line := await stream.readline():
        lines.append(line.decode())


async def _wait_for_serving_line(served: Served) -> str:
    stream = served.process.stdout
    assert stream is not None
    while line := (await stream.readline()).decode():
        served.stdout.append(line)
        if "serving" in line:
            return line
    raise AssertionError(
        f"timestep serve exited ({await served.process.wait()}) without serving:\n{served.output}"
    )


@pytest.fixture
async def served(database_url: str, fake_openai: FakeOpenAI) -> AsyncIterator[Served]:
    """`timestep serve` on a free port, using the test database and the fake model server."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "timestep",
        "serve",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        # Like the in-process test services: never recover segments other tests' services left.
        "--replica-timeout",
        "3600",
        "--stranded-grace",
        "3600",
        cwd=REPO,
        env=cli_environment(
            PG_CONNECTION_URI=database_url, OPENAI_API_KEY=CLI_API_KEY, OPENAI_BASE_URL=fake_openai.base_url
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    served = Served(process, port)
    # Drain stderr (the logs) all along, so the process can never block on a full pipe.
    logs = asyncio.create_task(_collect(process.stderr, served.stderr))
    try:
        line = await asyncio.wait_for(_wait_for_serving_line(served), STARTUP_TIMEOUT)
        assert line.strip() == f"timestep: serving on 127.0.0.1:{port}", served.output
        yield served
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await asyncio.wait_for(logs, WAIT)


async def test_serve_answers_clients_and_stops_on_sigterm(served: Served, fake_openai: FakeOpenAI) -> None:
    async with TimestepClient(f"127.0.0.1:{served.port}") as client:
        agents = await asyncio.wait_for(client.list_agents(), WAIT)
        assert [agent.name for agent in agents] == ["assistant", "billing"]

        fake_openai.script(text("Hello from the served model."))
        run = await client.create_run("assistant", "Say hello.", wait=True, timeout=WAIT)

        assert run.status == RunStatus.RUN_STATUS_COMPLETED, run
        assert run.final_output == "Hello from the served model."
        assert run.usage.requests == 1
        # The model call went to OPENAI_BASE_URL with OPENAI_API_KEY.
        assert len(fake_openai.requests) == 1
        assert fake_openai.headers[0]["authorization"] == f"Bearer {CLI_API_KEY}"
        # And the run is stored in PG_CONNECTION_URI's database.
        assert (await client.get_run(run.id)).final_output == run.final_output

    served.process.send_signal(signal.SIGTERM)
    exit_code = await asyncio.wait_for(served.process.wait(), SHUTDOWN_TIMEOUT)

    assert exit_code == 0, served.output
    assert "Traceback" not in served.output


async def test_serve_stops_on_sigint(served: Served) -> None:
    served.process.send_signal(signal.SIGINT)
    exit_code = await asyncio.wait_for(served.process.wait(), SHUTDOWN_TIMEOUT)

    assert exit_code == 0, served.output
    assert "Traceback" not in served.output


@pytest.mark.parametrize("command", [["--help"], ["serve", "--help"]])
async def test_help_lists_commands_and_environment(command: list[str]) -> None:
    exit_code, stdout, stderr = await run_cli(*command)

    assert exit_code == 0, stderr
    assert "serve" in stdout
    for variable in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OLLAMA_HOST",
        "OLLAMA_API_KEY",
        "FIRECRAWL_API_KEY",
        "TIMESTEP_PRICES",
        "PG_CONNECTION_URI",
        "TIMESTEP_DATA_DIR",
        "TIMESTEP_AGENTS",
    ):
        assert variable in stdout, f"{variable} missing from timestep {' '.join(command)}"


async def test_serve_help_lists_options() -> None:
    exit_code, stdout, stderr = await run_cli("serve", "--help")

    assert exit_code == 0, stderr
    for option in ("--host", "--port", "--agents", "--max-turns", "--log-level"):
        assert option in stdout, f"{option} missing from timestep serve --help"
    assert "default: 50051" in stdout
    assert "timestep.examples.agents:AGENTS" in stdout


async def test_no_command_is_a_usage_error() -> None:
    exit_code, stdout, stderr = await run_cli()

    assert exit_code == 2
    assert "usage: timestep" in stderr
    assert stdout == ""
