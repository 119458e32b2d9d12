"""Timestep against the in-process SDK and the physical limits, in one command.

    python -m bench [--smoke] [--json PATH] [--scenarios hitl,streaming,...]

Starts the fake model server (a subprocess), a PostgreSQL database of its own (created and
dropped; found like the service finds its server) and the service (durable, and durable=False
for comparison), runs each scenario beside its baseline, prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import asyncpg

from bench.environment import bench_environment
from bench.report import Row, table
from bench.scenarios import SCENARIOS


def _find(rows: list[Row], metric: str) -> Row | None:
    return next((row for row in rows if row.metric == metric), None)


def targets(rows: list[Row]) -> list[dict[str, Any]]:
    """The issue's targets, each with the value reached and whether it is met."""
    found: list[dict[str, Any]] = []

    def add(target: str, value: float | None, met: bool, shown: str) -> None:
        found.append({"target": target, "value": value, "met": met, "reached": shown})

    row = _find(rows, "HITL cycle, gRPC durable")
    if row and row.ratio is not None:
        add(
            "HITL cycle over gRPC, durable <= 1.5x in-process SDK",
            row.ratio,
            row.ratio <= 1.5,
            f"{row.ratio:.2f}x",
        )
    row = _find(rows, "first token, durable")
    if row:
        added = row.median - statistics.median(row.baseline)
        add("time to first token <= in-process + 3 ms (median)", added, added <= 3, f"+{added:.1f} ms")
    throughput = [
        r for r in rows if r.scenario == "throughput" and r.metric.startswith("throughput, 100 clients")
    ]
    errors = [r for r in rows if r.scenario == "throughput" and r.metric.startswith("errors, 100 clients")]
    if throughput and throughput[0].ratio is not None:
        ratio = throughput[0].ratio
        error_count = errors[0].median if errors else 0
        add(
            "100 concurrent clients: throughput >= 0.7x in-process SDK, zero errors",
            ratio,
            ratio >= 0.7 and error_count == 0,
            f"{ratio:.2f}x, {error_count:.0f} errors",
        )
    row = _find(rows, "durable overhead per model call vs 10 KB INSERT")
    if row and row.ratio is not None:
        add(
            "durable overhead per model call <= 4x a 10 KB INSERT",
            row.ratio,
            row.ratio <= 4,
            f"{row.ratio:.2f}x",
        )
    row = _find(rows, "stored bytes per turn, second half")
    if row and row.ratio is not None:
        add(
            "linear storage growth (bytes/turn, 2nd half / 1st half <= 1.25)",
            row.ratio,
            row.ratio <= 1.25,
            f"{row.ratio:.2f}x",
        )
    row = _find(rows, "time per turn, last tenth vs first tenth")
    if row and row.ratio is not None:
        add(
            "flat time per turn (last tenth / first tenth <= 1.25)",
            row.ratio,
            row.ratio <= 1.25,
            f"{row.ratio:.2f}x",
        )
    return found


async def _machine() -> dict[str, Any]:
    from timestep.store.database import resolve_server

    connection = await asyncpg.connect((await resolve_server()).dsn)
    try:
        postgres = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    memory = ""
    for line in Path("/proc/meminfo").read_text().splitlines():  # noqa: ASYNC240 (a tiny file)
        if line.startswith("MemTotal"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "nproc": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "postgresql": postgres,
        "platform": platform.platform(),
    }


async def run(names: list[str], smoke: bool, json_path: Path | None) -> int:
    started = time.perf_counter()
    rows: list[Row] = []
    results: dict[str, Any] = {}
    failed = False
    async with bench_environment(smoke) as bench:
        for name in names:
            print(f"== {name}", file=sys.stderr, flush=True)
            scenario_start = time.perf_counter()
            try:
                found = await SCENARIOS[name](bench)
            except Exception:
                failed = True
                traceback.print_exc()
                results[name] = {"error": traceback.format_exc(), "rows": []}
                continue
            elapsed = time.perf_counter() - scenario_start
            print(f"   {elapsed:.1f} s", file=sys.stderr, flush=True)
            rows += found
            results[name] = {"elapsed_s": elapsed, "rows": [row.to_json() for row in found]}
    total = time.perf_counter() - started
    print(table(rows))
    reached = targets(rows)
    print()
    for target in reached:
        print(f"{'met   ' if target['met'] else 'MISSED'}  {target['target']}: {target['reached']}")
    print(f"\ntotal {total:.1f} s{' (smoke)' if smoke else ''}")
    if json_path is not None:
        document = {
            "command": " ".join(["python -m bench", *sys.argv[1:]]),
            "smoke": smoke,
            "machine": await _machine(),
            "elapsed_s": total,
            "scenarios": results,
            "targets": reached,
        }
        json_path.write_text(json.dumps(document, indent=2) + "\n")  # noqa: ASYNC240
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few iterations of everything (for CI)")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated, from: %(default)s",
    )
    args = parser.parse_args()
    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(run(names, args.smoke, args.json)))


if __name__ == "__main__":
    main()
