"""Faults: the database drops every connection of the service in the middle of a run, and a
subscriber stops reading while others follow the same long streamed run."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import asyncpg
from timestep.app import TimestepService
from timestep.runtime.providers import ModelConfig
from timestep_client import RunEvent, RunStatus, TimestepClient

from tests.adversarial.conftest import CHANNELS
from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.helpers import WAIT, EventStream, collect_events, kinds, sequences, statuses

# Reconnecting to the database after losing it may take a few retries.
RECOVERY_S: Final = 30.0
LONG_ANSWER: Final = " ".join(f"w{i}" for i in range(3000))

TERMINATE_SQL: Final = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


async def drop_service_connections(database_url: str) -> int:
    """Terminate every other session on the test database: the service's pool, its LISTEN
    connection and DBOS's connections. Returns how many were terminated."""
    connection = await asyncpg.connect(database_url)
    try:
        terminated: int = await connection.fetchval(TERMINATE_SQL)
        return terminated
    finally:
        await connection.close()


def durable(events: list[RunEvent]) -> list[RunEvent]:
    return [event for event in events if event.sequence > 0]


async def test_a_run_completes_after_the_database_drops_every_connection_mid_run(
    client: TimestepClient, fake_openai: FakeOpenAI, database_url: str
) -> None:
    held = asyncio.Event()
    fake_openai.script(tool_call("get_weather", {"city": "Paris"}, hold=held), text("Sunny in Paris."))
    run = await client.create_run("assistant", "What is the weather in Paris?")

    async with EventStream(client, run.id) as stream:
        await fake_openai.wait_for_requests(1, timeout=WAIT)  # the model call is in flight
        assert await drop_service_connections(database_url) > 0
        held.set()
        await stream.rest(RECOVERY_S)

    finished = await client.get_run(run.id)
    assert finished.status == RunStatus.RUN_STATUS_COMPLETED, finished.error
    assert finished.final_output == "Sunny in Paris."
    stored = await collect_events(client, run.id)
    assert sequences(stored) == list(range(1, finished.last_sequence + 1)), "no gap, no duplicate"
    assert durable(stream.received) == durable(stored), "the live subscriber saw every stored event once"
    assert statuses(stored) == [
        RunStatus.RUN_STATUS_QUEUED,
        RunStatus.RUN_STATUS_RUNNING,
        RunStatus.RUN_STATUS_COMPLETED,
    ]
    assert kinds(durable(stored)).count("tool_output") == 1, "the tool ran once"
    assert len(fake_openai.requests) == 2, "no model call was repeated"


async def test_subscribers_on_every_replica_see_a_run_finish_after_the_database_drops_connections(
    service: TimestepService,
    start_service: StartService,
    model_config: ModelConfig,
    fake_openai: FakeOpenAI,
    database_url: str,
) -> None:
    """Whichever replica executes the run, the other learns of its events only through its
    LISTEN connection, which the fault also drops."""
    held = asyncio.Event()
    fake_openai.script(text("Still here.", hold=held))
    async with (
        start_service(model_config) as other,
        TimestepClient(f"127.0.0.1:{service.port}") as here,
        TimestepClient(f"127.0.0.1:{other.port}") as there,
    ):
        run = await here.create_run("assistant", "Are you there?")
        async with EventStream(here, run.id) as first, EventStream(there, run.id) as second:
            await fake_openai.wait_for_requests(1, timeout=WAIT)
            assert await drop_service_connections(database_url) > 0
            held.set()
            await asyncio.wait_for(
                asyncio.gather(first.rest(RECOVERY_S), second.rest(RECOVERY_S)), RECOVERY_S
            )
        stored = durable(await collect_events(here, run.id))
    assert statuses(stored)[-1] == RunStatus.RUN_STATUS_COMPLETED
    assert durable(first.received) == stored
    assert durable(second.received) == stored


async def test_a_subscriber_that_stops_reading_does_not_hold_up_the_others(
    clients: list[TimestepClient], fake_openai: FakeOpenAI
) -> None:
    release = asyncio.Event()
    fake_openai.script(text(LONG_ANSWER, hold=release))
    run = await clients[0].create_run("assistant", "Talk for a long time.")

    async with contextlib.AsyncExitStack() as streams:
        slow, *others = [
            await streams.enter_async_context(EventStream(clients[i % CHANNELS], run.id))
            for i in range(1 + CHANNELS)
        ]
        for stream in (slow, *others):  # every one subscribed before the answer streams
            await stream.wait_for(lambda event: event.sequence == 1)
        release.set()
        # The others finish while the slow one reads nothing more.
        await asyncio.wait_for(asyncio.gather(*(other.rest() for other in others)), WAIT)
        assert len(slow.received) == 1
        await slow.rest()
    followed = [other.received for other in others]

    stored = durable(await collect_events(clients[0], run.id))
    assert statuses(stored)[-1] == RunStatus.RUN_STATUS_COMPLETED
    for events in [*followed, slow.received]:
        assert durable(events) == stored, "every subscriber got every durable event once, in order"
    for events in followed:
        assert "".join(e.text_delta.delta for e in events if e.HasField("text_delta")) == LONG_ANSWER
