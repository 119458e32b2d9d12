"""Database round trips per HITL cycle, counted by a proxy between the service and PostgreSQL:
a count, not a time, so it holds on a busy machine too."""

from __future__ import annotations

import statistics

from timestep.runtime.providers import ModelConfig
from timestep_client import TimestepClient

from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.helpers import EMAIL_ARGS
from timestep_testing.pg_proxy import RoundTripProxy, hitl_round_trips

# The most round trips a durable HITL cycle may take (CreateRun waiting until it pauses,
# ApproveInterruption, ResumeRun waiting until it completes; segments and DBOS included).
MOST_ROUND_TRIPS = 25
CYCLES = 4


async def test_a_hitl_cycle_takes_at_most_25_database_round_trips(
    start_service: StartService, durable_database: str, fake_openai: FakeOpenAI, model_config: ModelConfig
) -> None:
    async with RoundTripProxy(durable_database) as proxy:
        async with start_service(model_config, database_url=proxy.dsn) as service:
            async with TimestepClient(f"127.0.0.1:{service.port}") as client:
                counts = []
                for cycle in range(CYCLES + 1):  # the first warms the statement caches
                    import timestep_testing.pg_proxy as P

                    P.TRACE = []
                    fake_openai.script(tool_call("send_email", EMAIL_ARGS), text("Sent."))
                    counts.append(await hitl_round_trips(client, proxy, "assistant", "Tell Bob"))
                    print("\n".join(P.TRACE))
                    print("=====")
    print(counts)
    totals = [count.total for count in counts[1:]]
    assert statistics.median(totals) <= MOST_ROUND_TRIPS, counts
