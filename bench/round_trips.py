"""Database round trips per HITL cycle: a `timestep serve` process (durable, with DBOS of its
own) on the bench's database through a counting proxy (`timestep_testing.pg_proxy`)."""

from __future__ import annotations

import signal

from bench.environment import Bench
from bench.report import Row
from timestep_testing.harness import ServeProcess, connect, free_port
from timestep_testing.pg_proxy import HitlRoundTrips, RoundTripProxy, hitl_round_trips

NOTE = "median of the cycles after a warm-up one"


async def round_trips(bench: Bench) -> list[Row]:
    counts: list[HitlRoundTrips] = []
    async with RoundTripProxy(bench.database_url) as proxy:
        environment = bench.serve_environment(proxy.dsn)
        server = ServeProcess("bench-round-trips", free_port(), ["--log-level", "WARNING"], environment)
        await server.start()
        client = connect(server.address)
        try:
            for _ in range(bench.iterations(10, 3) + 1):  # the first warms the statement caches
                counts.append(await hitl_round_trips(client, proxy, "assistant", "hitl"))
        finally:
            await client.close()
            await server.end(signal.SIGTERM)
    measured = counts[1:]

    def row(metric: str, values: list[int]) -> Row:
        return Row("round_trips", metric, "trips", [float(v) for v in values], note=NOTE)

    return [
        row("HITL cycle, the service's own", [c.total for c in measured]),
        row("  CreateRun(wait) to paused", [c.create for c in measured]),
        row("  ApproveInterruption", [c.approve for c in measured]),
        row("  ResumeRun(wait) to completed", [c.resume for c in measured]),
        row("HITL cycle, DBOS's workflow rows", [c.dbos for c in measured]),
    ]
