"""Retention with two replicas on one database: their sweeps share one DBOS schedule, every
expired run is deleted once (the totals the metrics report count each once), kept runs stay."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc

from tests.durability.conftest import WAIT, LaunchReplica
from timestep_testing.fakes.openai_responses import FakeOpenAI, text
from timestep_testing.helpers import expect_rpc_error, unique

RUNS = 12
RETENTION = ("--retention", "1s", "--retention-sweep-every", "1s", "--retention-batch", "5")


async def test_two_replicas_sweep_each_expired_run_away_once_and_keep_kept_runs(
    launch: LaunchReplica, fake_openai: FakeOpenAI, durable_database: str
) -> None:
    fake_openai.script(*(text(f"answer {n}") for n in range(RUNS + 1)))
    a, b = await asyncio.gather(launch("A", *RETENTION), launch("B", *RETENTION))
    async with a.client() as on_a, b.client() as on_b:
        kept = await on_a.create_run("assistant", "keep me", keep=True, wait=True, timeout=WAIT)
        expiring = [
            await (on_a, on_b)[n % 2].create_run(
                "assistant", f"m{n}", session_id=unique("s"), wait=True, timeout=WAIT
            )
            for n in range(RUNS)
        ]
        connection = await asyncpg.connect(durable_database)
        try:
            # Sweeps of at most 5 runs, one per second across both replicas: a few seconds.
            async with asyncio.timeout(WAIT):
                while await connection.fetchval("SELECT count(*) FROM runs WHERE NOT keep"):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)  # the sweeps announce nothing; the database is asked
            totals = await connection.fetchrow("SELECT runs, session_items FROM retention_totals")
        finally:
            await connection.close()
        still = await on_b.get_run(kept.id)
        for run in expiring:
            await expect_rpc_error(on_b.get_run(run.id), grpc.StatusCode.NOT_FOUND)

    assert still.keep
    assert totals is not None
    assert (totals["runs"], totals["session_items"]) == (RUNS, 2 * RUNS)
