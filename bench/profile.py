"""Profiles of the in-process services under load, grouped by library.

    python -m bench.profile [--out DIR] [--no-py-spy]

Starts what `python -m bench` starts (the fake model, a database, the durable service in this
process) and runs three loads on the durable service: HITL cycles, one-model-call runs at 20
concurrent clients, and streamed runs timed to their first token. Each load runs twice: under
pyinstrument (the event loop's thread, wall-clock: time spent waiting shows as idle), then under
`py-spy record --gil` attached to this process (every thread, sampled only while it holds the
GIL: the CPU spent in Python). Prints, for each load and profiler, each library's self time and
cumulative time per HITL cycle or per run, and the functions with the most self time; the raw
profiles go to DIR (pyinstrument's text, py-spy's collapsed stacks)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pyinstrument import Profiler
from pyinstrument.frame import Frame
from timestep_client import RunStatus, TimestepClient

from bench.environment import Bench, bench_environment
from bench.load import load
from bench.scenarios import _hitl_service, _stream_service

PY_SPY_RATE = 200
# (what a path holds, its layer), the first match wins; library paths before the project's.
LAYERS: tuple[tuple[str, str], ...] = (
    ("/openai/", "openai + pydantic (SSE events)"),
    ("/pydantic", "openai + pydantic (SSE events)"),
    ("/httpx", "httpx/httpcore (model HTTP)"),
    ("/httpcore/", "httpx/httpcore (model HTTP)"),
    ("/h11/", "httpx/httpcore (model HTTP)"),
    ("/anyio/", "httpx/httpcore (model HTTP)"),
    ("/grpc/", "grpc"),
    ("/google/protobuf/", "protobuf"),
    ("/asyncpg/", "asyncpg"),
    ("/dbos/", "DBOS + SQLAlchemy"),
    ("/sqlalchemy/", "DBOS + SQLAlchemy"),
    ("/psycopg", "DBOS + SQLAlchemy"),
    ("/agents/", "Agents SDK"),
    ("/timestep_client/", "timestep client (load)"),
    ("/timestep/", "timestep (service)"),
    ("/bench/", "timestep client (load)"),
    ("/json/", "json"),
    ("selectors.py", "idle (waiting for I/O)"),
    ("/asyncio/", "asyncio"),
    ("/logging/", "logging"),
    ("/threading.py", "threads (waiting)"),
    ("/concurrent/futures/", "threads (waiting)"),
)
OTHER = "other (stdlib, ...)"


def _dispatches(function: str, path: str | None) -> bool:
    """Whether the frame runs a callback of the event loop or a job of a thread pool: the
    frames under it are the work; those above it (start-up, the loop) say nothing of who asked."""
    path = path or ""
    return (path.endswith("asyncio/events.py") and function.endswith("_run")) or (
        path.endswith("concurrent/futures/thread.py") and function.endswith("run")
    )


def layer(path: str | None) -> str:
    """The layer of a source file; py-spy names a module's file from its package's folder on."""
    for marker, name in LAYERS:
        if path and marker in "/" + path:
            return name
    return OTHER


K = TypeVar("K")


def _largest(seconds: dict[K, float]) -> list[tuple[K, float]]:
    return sorted(seconds.items(), key=lambda item: -item[1])


@dataclass
class Profile:
    """Seconds by layer (self and cumulative) and by function (self), over `units` units of load."""

    load: str
    profiler: str
    units: int
    total_s: float
    self_s: defaultdict[str, float]
    cumulative_s: defaultdict[str, float]
    functions_s: defaultdict[tuple[str, str, str], float]
    """Seconds by (function, where, layer)."""

    def report(self, unit: str, top: int = 12) -> str:
        lines = [
            f"### {self.load}: {self.profiler}, {self.total_s:.1f} s sampled over {self.units} {unit}s",
            "",
            f"| layer | self ms per {unit} | self % | cumulative ms per {unit} | cumulative % |",
            "|---|--:|--:|--:|--:|",
        ]
        for name, seconds in _largest(self.self_s):
            cumulative = self.cumulative_s[name]
            lines.append(
                f"| {name} | {1000 * seconds / self.units:.2f} | {100 * seconds / self.total_s:.1f} "
                f"| {1000 * cumulative / self.units:.2f} | {100 * cumulative / self.total_s:.1f} |"
            )
        lines += [
            "",
            f"| function (most self time) | layer | self ms per {unit} | self % |",
            "|---|---|--:|--:|",
        ]
        for (function, where, name), seconds in _largest(self.functions_s)[:top]:
            lines.append(
                f"| `{function}` {where} | {name} | {1000 * seconds / self.units:.2f} "
                f"| {100 * seconds / self.total_s:.1f} |"
            )
        return "\n".join(lines) + "\n"


def _short(path: str | None, line: int | None = None) -> str:
    if not path:
        return ""
    for anchor in ("site-packages/", "/server/", "/clients/python/", "/lib/python3.11/"):
        if anchor in path:
            path = path.split(anchor, 1)[1]
            break
    return f"{path}:{line}" if line else path


def from_pyinstrument(load_name: str, units: int, root: Frame) -> Profile:
    self_s: defaultdict[str, float] = defaultdict(float)
    cumulative_s: defaultdict[str, float] = defaultdict(float)
    functions_s: defaultdict[tuple[str, str, str], float] = defaultdict(float)

    def visit(frame: Frame, path: str | None, function: str, above: frozenset[str] | None) -> None:
        """`above`: the layers between this frame and the dispatch above it (None: none yet)."""
        if not frame.is_synthetic:  # synthetic frames ([self], [await]) are their parent's time
            function = frame.function or "?"
            # A built-in function (C: pydantic-core's validators, socket.send) is its caller's cost.
            if frame.file_path and frame.file_path != "<built-in>":
                path = frame.file_path
        name = layer(path)
        if above is not None and name not in above:
            cumulative_s[name] += frame.time
        own = frame.time - sum(child.time for child in frame.children)
        self_s[name] += own
        functions_s[function, _short(path), name] += own
        below = frozenset() if _dispatches(function, path) else None if above is None else above | {name}
        for child in frame.children:
            visit(child, path, function, below)

    visit(root, None, "?", None)
    return Profile(load_name, "pyinstrument", units, root.time, self_s, cumulative_s, functions_s)


_PY_SPY_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")


def from_py_spy(load_name: str, units: int, lines: Iterable[str]) -> Profile:
    """py-spy's raw output: one collapsed stack per line, root first, then its sample count."""
    self_s: defaultdict[str, float] = defaultdict(float)
    cumulative_s: defaultdict[str, float] = defaultdict(float)
    functions_s: defaultdict[tuple[str, str, str], float] = defaultdict(float)
    total = 0.0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        seconds = int(count) / PY_SPY_RATE
        total += seconds
        frames = [_PY_SPY_FRAME.match(part) for part in stack.split(";")]
        paths = [match["path"] if match else None for match in frames]
        dispatched = [
            index
            for index, match in enumerate(frames)
            if match and _dispatches(match["function"], match["path"])
        ]
        for name in {layer(path) for path in paths[dispatched[-1] + 1 if dispatched else len(paths) :]}:
            cumulative_s[name] += seconds
        leaf = frames[-1]
        self_s[layer(paths[-1])] += seconds
        where = (leaf["function"], _short(leaf["path"])) if leaf else ("?", "")
        functions_s[(*where, layer(paths[-1]))] += seconds
    return Profile(load_name, "py-spy --gil", units, total, self_s, cumulative_s, functions_s)


# ----- the loads -------------------------------------------------------------------------------


async def hitl_cycles(bench: Bench, count: int) -> int:
    for _ in range(count):
        await _hitl_service(bench.durable_client)
    return count


async def concurrent_runs(bench: Bench, count: int) -> int:
    clients = 20
    connected = [TimestepClient(f"127.0.0.1:{bench.durable.port}") for _ in range(clients)]

    async def call(index: int) -> None:
        run = await connected[index].create_run("assistant", "hello", wait=True)
        if run.status != RunStatus.RUN_STATUS_COMPLETED:
            raise RuntimeError(f"a run ended {RunStatus.Name(run.status)} {run.error}")

    try:
        found = await load(clients, max(1, count // clients), call)
    finally:
        for client in connected:
            await client.close()
    if found.errors:
        raise RuntimeError(f"{found.errors} runs failed")
    return len(found.latencies)


async def first_tokens(bench: Bench, count: int) -> int:
    for _ in range(count):
        await _stream_service(bench.durable_client, 50)
    return count


Load = Callable[[Bench, int], Awaitable[int]]
LOADS: tuple[tuple[str, str, Load, int], ...] = (
    ("HITL cycles, durable", "HITL cycle", hitl_cycles, 150),
    ("one-model-call runs, 20 concurrent clients, durable", "run", concurrent_runs, 600),
    ("streamed runs (50 tokens) to the last token, durable", "run", first_tokens, 150),
)


class PySpy:
    """`py-spy record --gil` attached to this process until stopped."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> PySpy:
        self.process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(os.getpid()),
            "--gil",
            "--rate",
            str(PY_SPY_RATE),
            "--format",
            "raw",
            "--output",
            str(self.output),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        if b"Sampling process" not in line:
            raise RuntimeError(f"py-spy did not attach: {line.decode(errors='replace')}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        output, _ = await asyncio.wait_for(self.process.communicate(), 60)
        if not self.output.exists():
            raise RuntimeError(f"py-spy wrote nothing: {output.decode(errors='replace')}")


async def profile(out: Path, py_spy: bool) -> list[tuple[Profile, str]]:
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the loads)
    found: list[tuple[Profile, str]] = []
    async with bench_environment(smoke=False) as bench:
        for index, (name, unit, run_load, count) in enumerate(LOADS):
            print(f"== {name}", file=sys.stderr, flush=True)
            await run_load(bench, 20)  # warm-up
            profiler = Profiler(interval=0.001, async_mode="disabled")
            profiler.start()
            units = await run_load(bench, count)
            recorded = profiler.stop()
            (out / f"{index}-pyinstrument.txt").write_text(profiler.output_text(unicode=True))
            root = recorded.root_frame()
            if root is not None:
                found.append((from_pyinstrument(name, units, root), unit))
            if py_spy:
                raw = out / f"{index}-py-spy.txt"
                started = time.perf_counter()
                async with PySpy(raw):
                    units = await run_load(bench, count)
                print(f"   py-spy: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
                lines = raw.read_text().splitlines()
                found.append((from_py_spy(name, units, lines), unit))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-profiles"), help="where the raw profiles go")
    parser.add_argument("--no-py-spy", action="store_true", help="pyinstrument only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for found, unit in asyncio.run(profile(args.out, not args.no_py_spy)):
        print(found.report(unit))


if __name__ == "__main__":
    main()
