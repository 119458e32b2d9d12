"""Database round trips per HITL cycle, counted by a proxy between the service and PostgreSQL:
a count, not a time, so it holds on a busy machine too."""

from __future__ import annotations

from timestep.runtime.providers import ModelConfig
from timestep_client import TimestepClient

from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.helpers import EMAIL_ARGS
from timestep_testing.pg_proxy import RoundTripProxy, hitl_round_trips

# The most round trips of the service's own a durable HITL cycle may take (CreateRun waiting
# until it pauses, ApproveInterruption, ResumeRun waiting until it completes, with both segments;
# DBOS's workflow rows are counted apart). The fewest of a few cycles: on a busy machine a cycle
# may also take a heartbeat, or a waiting caller that fell behind its run reads its events again.
MOST_ROUND_TRIPS = 25
CYCLES = 4


async def test_a_hitl_cycle_takes_at_most_25_database_round_trips_of_the_service(
    start_service: StartService, durable_database: str, fake_openai: FakeOpenAI, model_config: ModelConfig
) -> None:
    counts = []
    async with (
        RoundTripProxy(durable_database) as proxy,
        start_service(model_config, database_url=proxy.dsn) as service,
        TimestepClient(f"127.0.0.1:{service.port}") as client,
    ):
        for _ in range(CYCLES + 1):  # the first warms the statement caches
            fake_openai.script(tool_call("send_email", EMAIL_ARGS), text("Sent."))
            counts.append(await hitl_round_trips(client, proxy, "assistant", "Tell Bob"))
    totals = [count.total for count in counts[1:]]
    assert min(totals) <= MOST_ROUND_TRIPS, counts
