"""ScheduleService on the in-process service: a schedule every second creates ordinary runs,
pausing stops it, resuming restarts it, deleting removes it, and bad requests say why."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from timestep.app import ServiceConfig, TimestepService
from timestep.runtime.providers import ModelConfig
from timestep.settings import Limits, ScheduleLimits
from timestep_client import Run, RunStatus, TimestepClient
from timestep_client.v1 import schedules_pb2

from tests.durability.conftest import WAIT
from tests.e2e.test_errors import details_of
from timestep_testing.fakes.openai_responses import FakeOpenAI, text
from timestep_testing.helpers import collect_events, conversation, expect_rpc_error

EVERY_SECOND: Final = "* * * * * *"
# DBOS notices a paused schedule on its next poll of the schedules table (once a second), so a
# tick that falls within that long after PauseSchedule may still fire.
PAUSE_TAKES_EFFECT_S: Final = 1.5
# How long a paused schedule is watched for firings: about three ticks after it took effect.
PAUSED_OBSERVATION_S: Final = PAUSE_TAKES_EFFECT_S + 3.0


@asynccontextmanager
async def serving(database: str, model_config: ModelConfig, **config: Any) -> AsyncIterator[TimestepService]:
    """The service in this process on `database`; `config` overrides ServiceConfig fields."""
    settings = ServiceConfig(
        port=0,
        database_url=database,
        executor_id=f"schedules-{uuid.uuid4().hex[:8]}",
        schedule_limits=ScheduleLimits(min_interval_s=1),
    )
    running = await TimestepService.start(replace(settings, **config), model_config=model_config)
    try:
        yield running
    finally:
        await running.stop(grace=1)


@pytest.fixture
async def service(durable_database: str, model_config: ModelConfig) -> AsyncIterator[TimestepService]:
    """The service in this process, on a database of its own (its runs are this test's only)."""
    async with serving(durable_database, model_config) as running:
        yield running


def scheduled_time(run: Run) -> datetime:
    return datetime.fromisoformat(run.metadata["scheduled_time"])


async def runs_of(client: TimestepClient, schedule_id: str) -> list[Run]:
    listed = await client.list_runs(page_size=100)
    assert not listed.next_page_token
    return [run for run in listed.runs if run.metadata.get("schedule_id") == schedule_id]


async def test_a_schedule_fires_runs_until_paused_fires_again_when_resumed_and_can_be_deleted(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(*(text("Tick.") for _ in range(30)))
    request = schedules_pb2.CreateScheduleRequest(
        schedule_id="every-second",
        cron=EVERY_SECOND,
        agent="assistant",
        input="What time is it?",
        metadata={"team": "ops"},
    )
    created = (await client.schedules.CreateSchedule(request)).schedule

    await fake_openai.wait_for_requests(2, WAIT)  # two firings have started runs
    fired = await runs_of(client, "every-second")

    paused_at = datetime.now(UTC)
    paused = (
        await client.schedules.PauseSchedule(schedules_pb2.PauseScheduleRequest(schedule_id="every-second"))
    ).schedule
    # Waiting a bounded time is the point here: a paused schedule must stay silent for it.
    await asyncio.sleep(PAUSED_OBSERVATION_S)
    while_paused = await runs_of(client, "every-second")
    requests_while_paused = len(fake_openai.requests)

    resumed_at = datetime.now(UTC)
    resumed = (
        await client.schedules.ResumeSchedule(schedules_pb2.ResumeScheduleRequest(schedule_id="every-second"))
    ).schedule
    await fake_openai.wait_for_requests(requests_while_paused + 1, WAIT)
    after_resume = await runs_of(client, "every-second")
    listed = (await client.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest())).schedules
    got = (
        await client.schedules.GetSchedule(schedules_pb2.GetScheduleRequest(schedule_id="every-second"))
    ).schedule

    await client.schedules.DeleteSchedule(schedules_pb2.DeleteScheduleRequest(schedule_id="every-second"))
    await expect_rpc_error(
        client.schedules.GetSchedule(schedules_pb2.GetScheduleRequest(schedule_id="every-second")),
        grpc.StatusCode.NOT_FOUND,
    )
    after_delete = (await client.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest())).schedules

    assert created.id == "every-second"
    assert created.state == schedules_pb2.SCHEDULE_STATE_ACTIVE
    assert (created.cron, created.agent, created.input) == (EVERY_SECOND, "assistant", "What time is it?")
    # Each firing is an ordinary run carrying the schedule's id, its tick and the labels.
    assert len(fired) >= 2
    for run in fired:
        assert run.agent == "assistant"
        assert run.metadata["team"] == "ops"
    assert len({scheduled_time(run) for run in fired}) == len(fired)
    # Paused: no tick after the pause took effect made a run.
    assert paused.state == schedules_pb2.SCHEDULE_STATE_PAUSED
    took_effect = paused_at + timedelta(seconds=PAUSE_TAKES_EFFECT_S)
    late = [run for run in while_paused if scheduled_time(run) > took_effect]
    assert late == [], [scheduled_time(r) for r in late]
    # Resumed: it fires again, on ticks after the resume.
    assert resumed.state == schedules_pb2.SCHEDULE_STATE_ACTIVE
    assert any(scheduled_time(run) > resumed_at for run in after_resume)
    assert [s.id for s in listed] == ["every-second"]
    assert got.state == schedules_pb2.SCHEDULE_STATE_ACTIVE
    assert got.HasField("last_fire_time")
    assert after_delete == []


async def test_bad_schedules_are_refused_with_the_reason(client: TimestepClient) -> None:
    def create(schedule_id: str, cron: str, agent: str) -> schedules_pb2.CreateScheduleRequest:
        return schedules_pb2.CreateScheduleRequest(
            schedule_id=schedule_id, cron=cron, agent=agent, input="Hi"
        )

    invalid = await expect_rpc_error(
        client.schedules.CreateSchedule(create("bad-cron", "every monday", "assistant")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    never = await expect_rpc_error(
        client.schedules.CreateSchedule(create("february-30", "0 0 30 2 *", "assistant")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    unknown = await expect_rpc_error(
        client.schedules.CreateSchedule(create("no-agent", "0 9 * * 1-5", "nobody")),
        grpc.StatusCode.NOT_FOUND,
    )
    await client.schedules.CreateSchedule(create("taken", "0 9 * * 1-5", "assistant"))
    taken = await expect_rpc_error(
        client.schedules.CreateSchedule(create("taken", "0 10 * * 1-5", "assistant")),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    missing = await expect_rpc_error(
        client.schedules.PauseSchedule(schedules_pb2.PauseScheduleRequest(schedule_id="never-made")),
        grpc.StatusCode.NOT_FOUND,
    )
    listed = (await client.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest())).schedules

    assert "every monday" in invalid.details()
    assert "'0 0 30 2 *' never fires" in never.details()
    assert "nobody" in unknown.details()
    assert "taken" in taken.details()
    assert "never-made" in missing.details()
    assert [(s.id, s.cron) for s in listed] == [("taken", "0 9 * * 1-5")]


# ----- quotas ----------------------------------------------------------------------------------


class SkippedFirings(logging.Handler):
    """The WARNING the service logs for each firing it skipped, announced to the test's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._loop = loop
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self._loop.call_soon_threadsafe(self._add, record.getMessage())

    def _add(self, message: str) -> None:
        self.messages.append(message)
        self._changed.set()

    async def wait_for(self, count: int) -> None:
        async def logged() -> None:
            while len(self.messages) < count:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(logged(), WAIT)
        except TimeoutError:
            raise AssertionError(
                f"{count} skipped firings not logged within {WAIT}s: {self.messages}"
            ) from None


@pytest.fixture
async def skipped_firings() -> AsyncIterator[SkippedFirings]:
    handler = SkippedFirings(asyncio.get_running_loop())
    logger = logging.getLogger("timestep.durability.schedules")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def metric(exposition: bytes, name: str) -> float:
    for line in exposition.decode().splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in the metrics:\n{exposition.decode()}")


async def test_firings_count_against_max_active_runs_and_skipped_ones_are_recorded(
    durable_database: str,
    model_config: ModelConfig,
    fake_openai: FakeOpenAI,
    skipped_firings: SkippedFirings,
) -> None:
    release = asyncio.Event()
    fake_openai.script(text("Tick.", hold=release))  # the first firing's run stays RUNNING
    async with (
        serving(durable_database, model_config, limits=Limits(max_active_runs=1)) as running,
        TimestepClient(f"127.0.0.1:{running.port}") as client,
    ):
        await client.schedules.CreateSchedule(
            schedules_pb2.CreateScheduleRequest(
                schedule_id="busy", cron=EVERY_SECOND, agent="assistant", input="Tick?"
            )
        )
        await fake_openai.wait_for_requests(1, WAIT)
        await skipped_firings.wait_for(3)  # three later ticks found no room
        while_held = await runs_of(client, "busy")
        schedule = (
            await client.schedules.GetSchedule(schedules_pb2.GetScheduleRequest(schedule_id="busy"))
        ).schedule
        assert running.metrics is not None
        missed_metric = metric(await running.metrics.exposition(), "timestep_schedule_missed_fires")
        await client.schedules.PauseSchedule(schedules_pb2.PauseScheduleRequest(schedule_id="busy"))
        release.set()
        await collect_events(client, while_held[0].id)  # the stream ends when the run does
        finished = await client.get_run(while_held[0].id)

    # Only the first firing made a run: the others would have made a second active run.
    assert [run.status for run in while_held] == [RunStatus.RUN_STATUS_RUNNING], while_held
    assert finished.status == RunStatus.RUN_STATUS_COMPLETED
    assert schedule.missed_fires >= 3
    assert schedule.last_missed_time.ToDatetime(UTC) > scheduled_time(while_held[0])
    assert missed_metric >= 3
    assert "'busy'" in skipped_firings.messages[0]
    assert "--max-active-runs" in skipped_firings.messages[0]


async def test_a_tenant_has_at_most_max_schedules_firing_at_most_every_min_interval(
    durable_database: str, model_config: ModelConfig
) -> None:
    def create(schedule_id: str, cron: str) -> schedules_pb2.CreateScheduleRequest:
        return schedules_pb2.CreateScheduleRequest(
            schedule_id=schedule_id, cron=cron, agent="assistant", input="Hi"
        )

    limits = ScheduleLimits(max_schedules=2, min_interval_s=60)
    async with (
        serving(durable_database, model_config, schedule_limits=limits) as running,
        TimestepClient(f"127.0.0.1:{running.port}") as client,
    ):
        every_30_s = await expect_rpc_error(
            client.schedules.CreateSchedule(create("often", "*/30 * * * * *")),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        # Mostly 50 s apart, but 10 s once a minute: the shortest interval counts.
        uneven = await expect_rpc_error(
            client.schedules.CreateSchedule(create("uneven", "0,10 * * * * *")),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        await client.schedules.CreateSchedule(create("minutely", "0 * * * * *"))
        await client.schedules.CreateSchedule(create("weekdays", "0 9 * * 1-5"))
        third = await expect_rpc_error(
            client.schedules.CreateSchedule(create("third", "0 10 * * *")),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        await client.schedules.DeleteSchedule(schedules_pb2.DeleteScheduleRequest(schedule_id="minutely"))
        await client.schedules.CreateSchedule(create("third", "0 10 * * *"))  # room again
        listed = (await client.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest())).schedules

    assert "fires as often as every 30 s" in every_30_s.details()
    assert "at least 60 s between firings (--min-schedule-interval)" in every_30_s.details()
    assert "fires as often as every 10 s" in uneven.details()
    assert reasons_and_fields(every_30_s) == (["SCHEDULE_TOO_FREQUENT"], ["cron"])
    assert "2 schedules, the most this service allows (--max-schedules)" in third.details()
    assert reasons_and_fields(third) == (["TOO_MANY_SCHEDULES"], [])
    assert [s.id for s in listed] == ["third", "weekdays"]


def reasons_and_fields(error: grpc.aio.AioRpcError) -> tuple[list[str], list[str]]:
    """ErrorInfo reasons and BadRequest fields of an error."""
    status = rpc_status.from_call(error)
    assert status is not None
    reasons = [info.reason for info in details_of(status, error_details_pb2.ErrorInfo)]
    fields = [
        violation.field
        for bad in details_of(status, error_details_pb2.BadRequest)
        for violation in bad.field_violations
    ]
    return reasons, fields


async def test_list_schedules_pages_by_id_without_repeating_any(client: TimestepClient) -> None:
    made = sorted(f"daily-{index}" for index in range(5))
    for schedule_id in reversed(made):
        await client.schedules.CreateSchedule(
            schedules_pb2.CreateScheduleRequest(
                schedule_id=schedule_id, cron="0 3 * * *", agent="assistant", input="Hi"
            )
        )

    pages: list[list[str]] = []
    token = ""
    while True:
        page = await client.schedules.ListSchedules(
            schedules_pb2.ListSchedulesRequest(page_size=2, page_token=token)
        )
        pages.append([s.id for s in page.schedules])
        token = page.next_page_token
        if not token:
            break
    forged = await expect_rpc_error(
        client.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest(page_token="not-a-token")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    negative = await expect_rpc_error(
        client.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest(page_size=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    everything = await client.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest())

    assert pages == [made[0:2], made[2:4], made[4:5]]
    assert reasons_and_fields(forged)[1] == ["page_token"]
    assert reasons_and_fields(negative)[1] == ["page_size"]
    assert [s.id for s in everything.schedules] == made
    assert not everything.next_page_token


# ----- upgrade -----------------------------------------------------------------------------------


async def test_the_anonymous_tenants_schedules_and_sessions_survive_the_upgrade_to_scoped_keys(
    durable_database: str, model_config: ModelConfig, fake_openai: FakeOpenAI
) -> None:
    daily = schedules_pb2.CreateScheduleRequest(
        schedule_id="nightly", cron="0 3 * * *", agent="assistant", input="Summarise the day."
    )
    fake_openai.script(text("Hello Ada."), text("Your name is Ada."))
    async with (
        serving(durable_database, model_config) as running,
        TimestepClient(f"127.0.0.1:{running.port}") as client,
    ):
        await client.schedules.CreateSchedule(daily)
        await client.create_run("assistant", "My name is Ada.", session_id="s1", wait=True, timeout=WAIT)
    # Back to how a service before scoped keys stored them: the anonymous tenant's bare ids.
    connection = await asyncpg.connect(durable_database)
    try:
        await connection.execute(
            """UPDATE dbos.workflow_schedules SET schedule_name = 'nightly' WHERE schedule_name = '/nightly';
               UPDATE session_items SET session_id = 's1' WHERE session_id = '/s1';
               DROP TABLE schedule_misses;
               DELETE FROM schema_migrations WHERE version = 8;"""
        )
    finally:
        await connection.close()

    async with (
        serving(durable_database, model_config) as running,
        TimestepClient(f"127.0.0.1:{running.port}") as client,
    ):
        got = await client.schedules.GetSchedule(schedules_pb2.GetScheduleRequest(schedule_id="nightly"))
        listed = await client.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest())
        await client.create_run("assistant", "What is my name?", session_id="s1", wait=True, timeout=WAIT)

    assert got.schedule.cron == "0 3 * * *"
    assert [s.id for s in listed.schedules] == ["nightly"]
    assert conversation(fake_openai.requests[-1]) == [
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
    ]


async def test_concurrent_creations_cannot_overshoot_max_schedules(
    durable_database: str, model_config: ModelConfig
) -> None:
    limits = ScheduleLimits(max_schedules=2)
    async with (
        serving(durable_database, model_config, schedule_limits=limits) as running,
        TimestepClient(f"127.0.0.1:{running.port}") as client,
    ):
        outcomes = await asyncio.gather(
            *(
                client.schedules.CreateSchedule(
                    schedules_pb2.CreateScheduleRequest(
                        schedule_id=f"race-{index}", cron="0 3 * * *", agent="assistant", input="Hi"
                    ),
                    timeout=WAIT,
                )
                for index in range(6)
            ),
            return_exceptions=True,
        )
        listed = (await client.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest())).schedules

    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(refused) == 4, outcomes
    assert {error.code() for error in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert len(listed) == 2
