"""Real `timestep serve` processes for the durability tests: started, killed with SIGKILL and
restarted on a database of their own, talking to the fake model server of the test process.

Every wait here reads something (a process's output, a socket, a gRPC stream) with a timeout;
nothing sleeps to let time pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import asyncpg
import pytest
from timestep_client import RunEvent, TimestepClient

from timestep_testing.fakes.openai_responses import FakeOpenAI
from timestep_testing.gated_agents import AGENTS_OPTION, TOOL_GATES_ENV, TOOL_LOG_ENV, TOOL_SOCKET_ENV
from timestep_testing.harness import ServeProcess, connect, free_port, serve_environment
from timestep_testing.helpers import is_stop_status

# Starting imports the Agents SDK and DBOS and migrates the database; two cores may be busy.
STARTUP_TIMEOUT: Final = 60.0
SHUTDOWN_TIMEOUT: Final = 20.0
WAIT: Final = 30.0
"""Upper bound for waits that span a restart or a recovery; never used as a sleep."""
API_KEY: Final = "test"


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """The fake model server, noticing (`abandoned`) when a server process drops a call it held."""
    async with FakeOpenAI(cancel_on_disconnect=True) as fake:
        yield fake


# ----- steps as the step journal records them ------------------------------------------------

_STEPS_CHANNEL: Final = "test_recorded_steps"
# Installed by the test in its own database, once a server has migrated it.
_NOTIFY_RECORDED_STEPS: Final = f"""
CREATE FUNCTION public.test_notify_recorded_step() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{_STEPS_CHANNEL}', NEW.name);
    RETURN NEW;
END $$;
CREATE TRIGGER test_notify_recorded_step AFTER INSERT ON public.step_journal
    FOR EACH ROW EXECUTE FUNCTION public.test_notify_recorded_step();
"""


@dataclass
class RecordedSteps:
    """The names of steps ("model:…", "tool:…") as their results are committed, announced by a
    trigger on the step journal (`step_journal`): a step named here is one recovery replays."""

    dsn: str
    names: list[str] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _connection: asyncpg.Connection | None = None

    async def start(self) -> None:
        """Start watching (call it after a server has started: it creates the tables)."""
        self._connection = await asyncpg.connect(self.dsn)
        await self._connection.execute(_NOTIFY_RECORDED_STEPS)
        await self._connection.add_listener(_STEPS_CHANNEL, self._on_recorded)

    def _on_recorded(self, connection: object, pid: int, channel: str, payload: object) -> None:
        self.names.append(str(payload))
        self._changed.set()

    async def wait_for(self, name: str, times: int = 1, timeout: float = WAIT) -> None:  # noqa: ASYNC109
        """Wait until steps named `name` have been recorded `times` times in all."""

        async def recorded() -> None:
            while self.names.count(name) < times:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(recorded(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"step {name!r} was not recorded {times} time(s) within {timeout}s: {self.names}"
            ) from None

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


@pytest.fixture
async def recorded_steps(durable_database: str) -> AsyncIterator[RecordedSteps]:
    steps = RecordedSteps(durable_database)
    try:
        yield steps
    finally:
        await steps.close()


# ----- slow tools the tests control -----------------------------------------------------------


@dataclass
class ToolProbe:
    """The test's side of `timestep_testing.gated_agents`' slow tools."""

    directory: Path
    announced: list[str] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def log(self) -> Path:
        return self.directory / "tools.log"

    @property
    def gates(self) -> Path:
        return self.directory / "gates"

    @property
    def socket_path(self) -> Path:
        return self.directory / "tools.sock"

    def environment(self) -> dict[str, str]:
        return {
            TOOL_LOG_ENV: str(self.log),
            TOOL_GATES_ENV: str(self.gates),
            TOOL_SOCKET_ENV: str(self.socket_path),
        }

    def open_gate(self, label: str) -> None:
        """Let the tool call labelled `label` finish (now, or as soon as it starts)."""
        (self.gates / label).touch()

    async def wait_for(self, line: str, times: int = 1, timeout: float = WAIT) -> None:  # noqa: ASYNC109
        """Wait until tools have logged `line` ("start <tool> <label>" or "end <tool> <label>")
        `times` times in all."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.announced.count(line) >= times), timeout
                )
            except TimeoutError:
                raise AssertionError(
                    f"tools did not log {line!r} {times} time(s) within {timeout}s; log: {self.lines()}"
                ) from None

    def lines(self) -> list[str]:
        """What the tools logged, in order, across every server process."""
        return self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = (await reader.readline()).decode().strip()
        writer.close()
        if line:
            async with self._changed:
                self.announced.append(line)
                self._changed.notify_all()


@pytest.fixture
async def tools() -> AsyncIterator[ToolProbe]:
    # A short path: Unix socket paths are limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="ts-", dir="/tmp") as directory:
        probe = ToolProbe(Path(directory))
        probe.gates.mkdir()
        server = await asyncio.start_unix_server(probe._on_connection, path=str(probe.socket_path))
        try:
            yield probe
        finally:
            server.close()
            await server.wait_closed()


# ----- server processes ----------------------------------------------------------------------


class Replica(ServeProcess):
    """One `timestep serve` replica of a durability test, with its test agents."""

    def client(self) -> TimestepClient:
        return connect(self.address)

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, like a crash or an OOM kill."""
        await self.end(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM: an orderly shutdown."""
        await self.end(signal.SIGTERM)

    async def restart(self) -> None:
        """Kill (SIGKILL) and start again with the same executor id and port."""
        await self.kill()
        await self.start()


LaunchReplica = Callable[..., Awaitable[Replica]]


@pytest.fixture
async def launch(
    durable_database: str, fake_openai: FakeOpenAI, tools: ToolProbe, request: pytest.FixtureRequest
) -> AsyncIterator[LaunchReplica]:
    """`await launch("A", "--provider-limit", "...", api_key=...)`: a started replica on the test's
    database and fake model server; every replica is killed at the end of the test."""
    started: list[Replica] = []

    async def start(executor_id: str, *args: str, api_key: str = API_KEY) -> Replica:
        env = {
            **serve_environment(durable_database, fake_openai.base_url, api_key),
            **tools.environment(),
        }
        replica = Replica(
            executor_id,
            free_port(),
            ["--host", "127.0.0.1", "--agents", AGENTS_OPTION, *args],
            env,
            startup_timeout_s=STARTUP_TIMEOUT,
            shutdown_timeout_s=SHUTDOWN_TIMEOUT,
        )
        started.append(replica)
        await replica.start()
        return replica

    yield start
    for replica in started:
        with contextlib.suppress(Exception):
            await replica.kill()
    failed = request.node.stash.get(_FAILED, False)
    if failed:  # the servers' logs explain most failures
        for replica in started:
            sys.stderr.write(f"\n===== {replica.executor_id} ({replica.address}) =====\n{replica.log}")


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if getattr(report, "when", "") == "call" and getattr(report, "failed", False):
        item.stash[_FAILED] = True
    return report


# ----- following runs ------------------------------------------------------------------------


async def follow_to_stop(
    client: TimestepClient,
    run_id: str,
    after_sequence: int = 0,
    timeout: float = WAIT,  # noqa: ASYNC109
) -> list[RunEvent]:
    """The run's events after `after_sequence` until it stops (completes, fails, is cancelled or
    pauses), reconnecting across restarts of the server."""

    async def read() -> list[RunEvent]:
        events = []
        stream = client.stream_events(run_id, after_sequence, max_reconnects=60, backoff=0.1, max_backoff=0.5)
        async for event in stream:
            events.append(event)
            if is_stop_status(event):
                break
        return events

    return await asyncio.wait_for(read(), timeout)
