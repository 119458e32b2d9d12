"""ScheduleService on the in-process service: a schedule every second creates ordinary runs,
pausing stops it, resuming restarts it, deleting removes it, and bad requests say why."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Final

import grpc
import pytest
from timestep.app import ServiceConfig, TimestepService
from timestep.runtime.providers import ModelConfig
from timestep_client import Run, TimestepClient
from timestep_client.v1 import schedules_pb2

from tests.durability.conftest import WAIT
from tests.e2e.helpers import expect_rpc_error
from tests.fakes.openai_responses import FakeOpenAI, text

EVERY_SECOND: Final = "* * * * * *"
# DBOS notices a paused schedule on its next poll of the schedules table (once a second), so a
# tick that falls within that long after PauseSchedule may still fire.
PAUSE_TAKES_EFFECT_S: Final = 1.5
# How long a paused schedule is watched for firings: about three ticks after it took effect.
PAUSED_OBSERVATION_S: Final = PAUSE_TAKES_EFFECT_S + 3.0


@pytest.fixture
async def service(durable_database: str, model_config: ModelConfig) -> AsyncIterator[TimestepService]:
    """The service in this process, on a database of its own (its runs are this test's only)."""
    config = ServiceConfig(
        port=0, database_url=durable_database, executor_id=f"schedules-{uuid.uuid4().hex[:8]}"
    )
    running = await TimestepService.start(config, model_config=model_config)
    try:
        yield running
    finally:
        await running.stop(grace=1)


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
    assert "nobody" in unknown.details()
    assert "taken" in taken.details()
    assert "never-made" in missing.details()
    assert [(s.id, s.cron) for s in listed] == [("taken", "0 9 * * 1-5")]
