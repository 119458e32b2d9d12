"""The chaos soak (see `timestep_testing/chaos.py`): replicas killed and the database restarted under
continuous load, then every run completes with its invariants held.

Run it alone with `pytest -m soak`; replay a soak with TIMESTEP_SOAK_SEED=<the printed seed>,
and make it longer with TIMESTEP_SOAK_SECONDS.
"""

from __future__ import annotations

import os
import sys

import pytest

from timestep_testing.chaos import soak, soak_seed

SECONDS_ENV = "TIMESTEP_SOAK_SECONDS"
DEFAULT_SECONDS = 45.0


@pytest.mark.soak
@pytest.mark.timeout(420)
async def test_runs_complete_through_replica_kills_and_database_restarts() -> None:
    seed = soak_seed()
    sys.stderr.write(f"\nchaos soak seed {seed} (replay with TIMESTEP_SOAK_SEED={seed})\n")
    print(f"chaos soak seed {seed}")
    async with soak(seed) as world:
        figures = await world.run(float(os.environ.get(SECONDS_ENV, DEFAULT_SECONDS)))
        print(figures)
        try:
            await world.check()
        except AssertionError:
            for replica in world.replicas:
                sys.stderr.write(f"\n===== {replica.executor_id} =====\n{replica.log[-20000:]}")
            raise
    assert figures.kills > 0, "no replica was killed"
    assert figures.database_restarts > 0, "the database never restarted"
