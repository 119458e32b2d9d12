"""The chaos soak: two replicas on one PostgreSQL under continuous load, while replicas are killed
(`kill -9`, restarted a second later) and the database restarts; then every run must finish.

Runs arrive every `ARRIVAL_S` across both replicas: half ship a parcel (`soak_ship`, which pauses
for an approval the soak then gives), half work for a while (`soak_work`). Every few seconds one
fault strikes, chosen by a seeded random generator (`TIMESTEP_SOAK_SEED` replays a soak). After
the load, each run has `DRAIN_S` to finish. `Soak.check()` asserts the invariants:

* every run COMPLETED, with the output its model gave;
* each run's stored events are numbered 1..n (strictly increasing, none twice) and its status
  changes are exactly those of an undisturbed run;
* each tool call's effect happened exactly once per run (a tool re-run after a crash carries the
  same call id, which is the effect's idempotency key: a repeated model call would bring a new one).

Used by `tests/durability/test_chaos_soak.py` and the benchmark's `soak` scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc
from timestep_client import InterruptionStatus, RunEvent, RunStatus, TimestepClient

from timestep_testing.fakes.openai_responses import FakeOpenAI, Turn, text, tool_call
from timestep_testing.gated_agents import AGENTS_OPTION, TOOL_GATES_ENV, TOOL_LOG_ENV, TOOL_SOCKET_ENV
from timestep_testing.harness import (
    RestartablePostgres,
    ServeProcess,
    connect,
    create_database,
    free_port,
    serve_environment,
)

SEED_ENV: Final = "TIMESTEP_SOAK_SEED"
ARRIVAL_S: Final = 0.8
FAULT_EVERY_S: Final = (3.0, 5.0)
# A killed replica comes back this long after.
REVIVE_S: Final = 1.0
WORK_S: Final = 4.0
DRAIN_S: Final = 90.0
REPLICA_TIMEOUT_S: Final = "5"
# How long one call keeps trying (through replica restarts and database outages).
CALL_PATIENCE_S: Final = 60.0

T = TypeVar("T")
Chaos = Callable[[], Awaitable[None]]

_RETRYABLE: Final = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN}


def _last_user_text(body: dict[str, Any]) -> tuple[str, int]:
    """The last user message of a request and how many tool outputs follow it."""
    items = body.get("input")
    if isinstance(items, str):
        return items, 0
    outputs = 0
    for item in reversed(items if isinstance(items, list) else []):
        if item.get("type") == "function_call_output":
            outputs += 1
        elif item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list):
                content = " ".join(str(part.get("text", "")) for part in content)
            return str(content), outputs
    return "", outputs


class SoakModel(FakeOpenAI):
    """Answers from the conversation, so any number of runs share it: "ship L" calls soak_ship,
    "work L" calls soak_work, then each says what it did. Call ids are fresh on every response."""

    name = "SoakModel"

    def __init__(self) -> None:
        super().__init__(keep_alive=True, cancel_on_disconnect=True)

    async def _record(self, request: Any, body: dict[str, Any]) -> Turn | None:
        message, outputs = _last_user_text(body)
        verb, _, label = message.partition(" ")
        if verb == "ship":
            return tool_call("soak_ship", {"label": label}) if not outputs else text(f"Shipped {label}.")
        return (
            tool_call("soak_work", {"label": label, "seconds": WORK_S})
            if not outputs
            else text(f"Worked {label}.")
        )


@dataclass
class Figures:
    seed: int
    runs: int = 0
    kills: int = 0
    database_restarts: int = 0
    load_s: float = 0.0
    drain_s: float = 0.0
    tool_starts: int = 0
    tool_reruns: int = 0
    sweeper_recoveries: int = 0


@dataclass
class Soak:
    """One soak; `await soak.run(seconds)` then `soak.check()`."""

    seed: int
    directory: Path
    postgres: RestartablePostgres
    model: SoakModel
    replicas: list[ServeProcess] = field(default_factory=list)
    clients: list[TimestepClient] = field(default_factory=list)
    runs: dict[str, str] = field(default_factory=dict)  # label -> run id
    failures: list[str] = field(default_factory=list)
    figures: Figures = field(init=False)

    def __post_init__(self) -> None:
        self.figures = Figures(self.seed)
        self._random = random.Random(self.seed)
        self._reviving: set[str] = set()

    @property
    def log(self) -> Path:
        return self.directory / "tools.log"

    # ----- the load ------------------------------------------------------------------------

    async def _call(self, index: int, call: Callable[[TimestepClient], Awaitable[T]]) -> T:
        """`call` on replica `index`, else the other, through outages (bounded)."""
        deadline = time.monotonic() + CALL_PATIENCE_S
        attempt = 0
        while True:
            client = self.clients[(index + attempt) % len(self.clients)]
            try:
                return await call(client)
            except grpc.aio.AioRpcError as error:
                if error.code() not in _RETRYABLE or time.monotonic() > deadline:
                    raise
            attempt += 1
            await asyncio.sleep(0.2)  # backoff between attempts while a replica or the database is away

    async def _until(self, index: int, run_id: str, statuses: set[int]) -> Any:
        """The run once its status is one of `statuses`, following its events in between."""
        deadline = time.monotonic() + DRAIN_S + CALL_PATIENCE_S
        attempt = 0
        while True:
            client = self.clients[(index + attempt) % len(self.clients)]
            try:
                run = await client.get_run(run_id)
                if run.status in statuses:
                    return run
                # The stream ends at the run's next stop (pause or end); then look again.
                async for _ in client.stream_events(run_id, run.last_sequence, max_reconnects=0):
                    pass
                continue
            except grpc.aio.AioRpcError as error:
                if error.code() not in _RETRYABLE or time.monotonic() > deadline:
                    raise
            attempt += 1
            await asyncio.sleep(0.2)  # backoff between attempts while a replica or the database is away

    async def _one_run(self, number: int) -> None:
        index = number % len(self.clients)
        label = f"p{number}" if number % 2 == 0 else f"w{number}"
        verb = "ship" if number % 2 == 0 else "work"
        run = await self._call(
            index, lambda c: c.create_run("soaker", f"{verb} {label}", request_id=f"soak-{label}")
        )
        self.runs[label] = run.id
        if verb == "ship":
            paused = await self._until(index, run.id, _STOPPED)
            for interruption in paused.interruptions:
                if interruption.status == InterruptionStatus.INTERRUPTION_STATUS_PENDING:
                    await self._call(index, lambda c, i=interruption.id: c.approve(run.id, i))  # type: ignore[misc]
            await self._resume(index, run.id)

    async def _resume(self, index: int, run_id: str) -> None:
        try:
            await self._call(index, lambda c: c.resume(run_id))
        except grpc.aio.AioRpcError as error:
            # A resume whose reply was lost, repeated, finds the run past its pause.
            if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            run = await self._call(index, lambda c: c.get_run(run_id))
            if run.status == RunStatus.RUN_STATUS_INTERRUPTED:
                raise AssertionError(f"resuming {run_id} failed: {error.details()}") from error

    async def _load(self, seconds: float) -> None:
        tasks: list[asyncio.Task[None]] = []
        started = time.monotonic()
        number = 0
        while time.monotonic() - started < seconds:
            tasks.append(asyncio.create_task(self._one_run(number)))
            number += 1
            await asyncio.sleep(ARRIVAL_S)  # the arrival rate
        self.figures.runs = number
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                self.failures.append(f"a client call failed: {outcome!r}")

    # ----- the faults ----------------------------------------------------------------------

    async def _start(self, replica: ServeProcess) -> None:
        """Start a replica, again if the database went away while it was starting."""
        deadline = time.monotonic() + CALL_PATIENCE_S
        while True:
            try:
                await replica.start()
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                await replica.end(signal.SIGKILL)

    async def _kill(self, replica: ServeProcess) -> None:
        self.figures.kills += 1
        self._reviving.add(replica.executor_id)
        try:
            await replica.end(signal.SIGKILL)
            await asyncio.sleep(REVIVE_S)  # how long the replica stays dead
            await self._start(replica)
        finally:
            self._reviving.discard(replica.executor_id)

    async def _restart_database(self) -> None:
        self.figures.database_restarts += 1
        await self.postgres.restart(self._random.choice(["fast", "fast", "immediate"]))

    async def _faults(self, seconds: float) -> None:
        started = time.monotonic()
        revivals: list[asyncio.Task[None]] = []
        # One of each first, then either at random.
        first = self._random.sample(["kill", "database"], 2)
        while True:
            await asyncio.sleep(self._random.uniform(*FAULT_EVERY_S))  # the fault rate
            if time.monotonic() - started >= seconds:
                break
            fault = first.pop() if first else self._random.choice(["kill", "database"])
            # Not one being revived: a second start of the same replica would orphan the first.
            alive = [r for r in self.replicas if r.running and r.executor_id not in self._reviving]
            if fault == "kill" and alive:
                revivals.append(asyncio.create_task(self._kill(self._random.choice(alive))))
            else:
                await self._restart_database()
        await asyncio.gather(*revivals)

    # ----- the soak ------------------------------------------------------------------------

    async def run(self, seconds: float) -> Figures:
        started = time.monotonic()
        await asyncio.gather(self._load(seconds), self._faults(seconds))
        self.figures.load_s = time.monotonic() - started
        drained = time.monotonic()
        finals = await asyncio.gather(
            *(
                asyncio.wait_for(self._until(number, run_id, _FINISHED), DRAIN_S)
                for number, run_id in enumerate(self.runs.values())
            ),
            return_exceptions=True,
        )
        self.figures.drain_s = time.monotonic() - drained
        for outcome in finals:
            if isinstance(outcome, BaseException):
                self.failures.append(f"waiting for a run failed: {outcome!r}")
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        self.figures.tool_starts = sum(line.startswith("start ") for line in lines)
        self.figures.tool_reruns = self.figures.tool_starts - len(self.runs)
        self.figures.sweeper_recoveries = sum(r.log.count("starting it again") for r in self.replicas)
        return self.figures

    async def check(self) -> None:
        """Assert the soak's invariants (see the module docstring)."""
        problems = list(self.failures)
        effects = Counter(
            "-".join(path.name.split("-")[:2]) for path in (self.directory / "effects").glob("*")
        )
        ends = Counter(
            line.removeprefix("end ") for line in self.log.read_text().splitlines() if line.startswith("end ")
        )
        for label, run_id in self.runs.items():
            ship = label.startswith("p")
            run = await self._call(0, lambda c, r=run_id: c.get_run(r))  # type: ignore[misc]
            expected = f"Shipped {label}." if ship else f"Worked {label}."
            if run.status != RunStatus.RUN_STATUS_COMPLETED or run.final_output != expected:
                problems.append(
                    f"{label} ({run_id}) ended {RunStatus.Name(run.status)} {run.final_output!r} {run.error}"
                )
            events = await self._events(run_id, run.last_sequence)
            numbers = [e.sequence for e in events]
            if numbers != list(range(1, run.last_sequence + 1)):
                problems.append(f"{label} ({run_id}) events are numbered {numbers}")
            path = [e.status_changed.status for e in events if e.HasField("status_changed")]
            if path != _STATUS_PATH["ship" if ship else "work"]:
                kinds = [e.WhichOneof("kind") for e in events]
                problems.append(
                    f"{label} ({run_id}) went through {[RunStatus.Name(s) for s in path]}; events {kinds}"
                )
            tool = "soak_ship" if ship else "soak_work"
            made, ended = effects[f"{tool}-{label}"], ends[f"{tool} {label}"]
            if made != 1 or ended != 1:
                problems.append(f"{label} ({run_id}): {made} effects, {ended} ends")
        assert not problems, f"soak seed {self.seed}: " + "\n".join(problems)

    async def _events(self, run_id: str, last_sequence: int) -> list[RunEvent]:
        """The run's stored events up to `last_sequence`."""

        async def read(client: TimestepClient) -> list[RunEvent]:
            events = []
            if last_sequence:
                async for event in client.stream_events(run_id, 0):
                    if event.sequence:
                        events.append(event)
                    if event.sequence >= last_sequence:
                        break
            return events

        return await self._call(0, read)


_FINISHED: Final[set[int]] = {
    RunStatus.RUN_STATUS_COMPLETED,
    RunStatus.RUN_STATUS_FAILED,
    RunStatus.RUN_STATUS_CANCELLED,
}
_STOPPED: Final[set[int]] = {*_FINISHED, RunStatus.RUN_STATUS_INTERRUPTED}
_STATUS_PATH: Final = {
    "work": [RunStatus.RUN_STATUS_QUEUED, RunStatus.RUN_STATUS_RUNNING, RunStatus.RUN_STATUS_COMPLETED],
    "ship": [
        RunStatus.RUN_STATUS_QUEUED,
        RunStatus.RUN_STATUS_RUNNING,
        RunStatus.RUN_STATUS_INTERRUPTED,
        RunStatus.RUN_STATUS_QUEUED,
        RunStatus.RUN_STATUS_RUNNING,
        RunStatus.RUN_STATUS_COMPLETED,
    ],
}


def soak_seed() -> int:
    """`TIMESTEP_SOAK_SEED` when set (to replay a soak), else a fresh one."""
    configured = os.environ.get(SEED_ENV)
    return int(configured) if configured else random.SystemRandom().randrange(1_000_000)


@contextlib.asynccontextmanager
async def soak(seed: int, replicas: int = 2) -> Any:
    """A soak's world: its own PostgreSQL, the model, `replicas` started replicas and clients."""
    directory = Path(tempfile.mkdtemp(prefix="ts-soak-", dir="/tmp"))
    postgres = RestartablePostgres(Path(tempfile.mkdtemp(prefix="ts-pg-", dir="/tmp")))
    await postgres.create()
    model = SoakModel()
    await model.start()
    world = Soak(seed, directory, postgres, model)
    try:
        database = await create_database(postgres.dsn, "timestep_soak")
        env = serve_environment(database, model.base_url, "soak")
        env.update({TOOL_LOG_ENV: str(world.log), TOOL_GATES_ENV: str(directory), TOOL_SOCKET_ENV: ""})
        for name in ("soak-a", "soak-b", "soak-c")[:replicas]:
            replica = ServeProcess(
                name,
                free_port(),
                [
                    "--host",
                    "127.0.0.1",
                    "--agents",
                    AGENTS_OPTION,
                    "--replica-timeout",
                    REPLICA_TIMEOUT_S,
                ],
                env,
            )
            world.replicas.append(replica)
            await replica.start()
            world.clients.append(connect(replica.address))
        yield world
    finally:
        for client in world.clients:
            await client.close()
        for replica in world.replicas:
            with contextlib.suppress(Exception):
                await replica.end(signal.SIGKILL)
        await model.stop()
        await postgres.destroy()
        if sys.exc_info()[0] is None:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)
