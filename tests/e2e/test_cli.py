"""The `timestep` command: `timestep serve` as a real process, configured only through its
command line and environment, serving real clients and stopping cleanly on SIGTERM; and its
help texts.

Every wait reads the process's output or awaits its exit with a timeout; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest
from timestep.commands.output import USAGE
from timestep_client import RunStatus, TimestepClient

from timestep_testing.fakes.openai_responses import FakeOpenAI, text
from timestep_testing.harness import free_port, run_to_completion
from timestep_testing.helpers import WAIT

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
    env["TIMESTEP_HTTP_PORT"] = "0"  # 8080 may be taken
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


@contextlib.asynccontextmanager
async def serving(
    database_url: str, fake_openai: FakeOpenAI, *, python: tuple[str, ...] = ("-m", "timestep"), **env: str
) -> AsyncIterator[Served]:
    """`python PYTHON serve` (the `timestep` command unless told) on a free port, using the test
    database, the fake model server and the variables `env`; killed at the end if still running."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *python,
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
            PG_CONNECTION_URI=database_url,
            OPENAI_API_KEY=CLI_API_KEY,
            OPENAI_BASE_URL=fake_openai.base_url,
            **env,
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


@pytest.fixture
async def served(database_url: str, fake_openai: FakeOpenAI) -> AsyncIterator[Served]:
    """`timestep serve` on a free port, using the test database and the fake model server."""
    async with serving(database_url, fake_openai) as served:
        yield served


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
    flat = " ".join(stdout.split())
    assert "--max-schedules N schedules per tenant" in flat
    assert "FAILED_PRECONDITION (0: no limit; default: 100)" in flat
    assert "--min-schedule-interval SECONDS shortest time between two firings" in flat
    assert "CreateSchedule (default: 60.0)" in flat


async def test_no_command_is_a_usage_error() -> None:
    exit_code, stdout, stderr = await run_cli()

    assert exit_code == 2
    assert "usage: timestep" in stderr
    assert stdout == ""


# `timestep` as `pip install .` leaves it: without the otel extra (the OpenTelemetry API comes
# with the Agents SDK's dependencies; the SDK and the OTLP exporter come only with the extra).
WITHOUT_OTEL_EXTRA: Final = (
    "-c",
    "import sys; sys.modules['opentelemetry.sdk'] = None; sys.modules['opentelemetry.exporter'] = None; "
    "from timestep.cli import main; main()",
)


async def test_an_otlp_endpoint_in_the_environment_without_the_otel_extra_only_warns(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    async with serving(
        database_url, fake_openai, python=WITHOUT_OTEL_EXTRA, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"
    ) as served:
        async with TimestepClient(f"127.0.0.1:{served.port}") as client:
            agents = await client.list_agents()
        served.process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(served.process.wait(), SHUTDOWN_TIMEOUT)

    assert agents
    assert exit_code == 0, served.output
    warnings = [line for line in served.stderr if "OTEL_EXPORTER_OTLP_ENDPOINT" in line]
    assert len(warnings) == 1, served.output
    assert " WARNING " in warnings[0]
    assert "tracing is off" in warnings[0]
    assert "pip install 'timestep[otel]'" in warnings[0]
    assert "Traceback" not in served.output


async def test_otlp_endpoint_on_the_command_line_without_the_otel_extra_is_a_clear_error() -> None:
    code, _, stderr = await run_to_completion(
        sys.executable, *WITHOUT_OTEL_EXTRA, "serve", "--port", "0", "--otlp-endpoint", "http://127.0.0.1:9",
        limit_s=STARTUP_TIMEOUT, cwd=REPO, env=cli_environment(),
    )  # fmt: skip

    assert code == USAGE, stderr
    assert "timestep: OpenTelemetry tracing needs the otel extra" in stderr
    assert "pip install 'timestep[otel]'" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("{not json", "is not valid JSON: Expecting property name"),
        ('{"gpt-x": {"input": "two"}}', "'gpt-x' must be an object with non-negative numbers"),
    ],
)
async def test_serve_with_a_bad_prices_file_exits_with_one_line_naming_it(
    tmp_path: Path, content: str, complaint: str
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(content)

    code, _, stderr = await run_cli("serve", "--port", "0", env=cli_environment(TIMESTEP_PRICES=str(prices)))

    assert code == USAGE, stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("timestep:")]
    assert line.startswith("timestep: TIMESTEP_PRICES: ")
    assert str(prices) in line
    assert complaint in line
    assert "Traceback" not in stderr
