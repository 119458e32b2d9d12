"""--retention: finished runs older than the policy's age are deleted by a durable sweep, through
DeleteRun's path (no row naming them remains), kept and unfinished runs stay, and the metrics
count what was deleted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import grpc
import pytest
from timestep.runtime.providers import ModelConfig
from timestep.settings import ConfigurationError, RetentionPolicy, parse_duration
from timestep_client import RunStatus, TimestepClient

from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.harness import assert_no_secret_anywhere
from timestep_testing.helpers import EMAIL_ARGS, WAIT, expect_rpc_error, unique


class SweepLog(logging.Handler):
    """Sets `deleted` when a retention sweep logs that it deleted runs."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("retention deleted"):
            self.deleted.set()


@pytest.fixture
def sweep_log() -> Iterator[SweepLog]:
    handler = SweepLog()
    logger = logging.getLogger("timestep.runs.retention")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def test_a_sweep_deletes_finished_runs_past_the_age_and_keeps_the_rest(
    start_service: StartService,
    model_config: ModelConfig,
    durable_database: str,
    fake_openai: FakeOpenAI,
    sweep_log: SweepLog,
) -> None:
    policy = RetentionPolicy(older_than_s=1, every_s=1)
    async with (
        start_service(model_config, database_url=durable_database, retention=policy) as service,
        TimestepClient(f"127.0.0.1:{service.port}") as client,
    ):
        session = unique("session")
        fake_openai.script(text("one"), text("two"), tool_call("send_email", EMAIL_ARGS))
        expiring = await client.create_run("assistant", "a", session_id=session, wait=True)
        kept = await client.create_run("assistant", "b", session_id=session, keep=True, wait=True)
        paused = await client.create_run("assistant", "Email Bob", wait=True)
        assert (expiring.status, kept.keep, paused.status) == (
            RunStatus.RUN_STATUS_COMPLETED,
            True,
            RunStatus.RUN_STATUS_INTERRUPTED,
        )

        await asyncio.wait_for(sweep_log.deleted.wait(), WAIT)

        await expect_rpc_error(client.get_run(expiring.id), grpc.StatusCode.NOT_FOUND)
        assert (await client.get_run(kept.id)).status == RunStatus.RUN_STATUS_COMPLETED
        assert (await client.get_run(paused.id)).status == RunStatus.RUN_STATUS_INTERRUPTED
        assert [item.run_id async for item in client.session_items(session)] == [kept.id, kept.id]
        await assert_no_secret_anywhere(durable_database, [expiring.id])
        await service.metrics.refresh_from_database()
        assert service.metrics.retention_deleted.labels("runs")._value.get() == 1
        assert service.metrics.retention_last_sweep._value.get() > 0

        unkept = await client.keep_run(kept.id, False)
        assert unkept.keep is False


def test_retention_durations_and_sweep_intervals_are_checked() -> None:
    assert [parse_duration(text) for text in ("45s", "30m", "12h", "30d")] == [45, 1800, 43200, 2592000]
    for bad in ("30", "d", "0d", "-1d", "1.5h", "1w"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
    assert [RetentionPolicy(60, every_s=s).cron() for s in (10, 60, 900, 3600, 86400)] == [
        "*/10 * * * * *",
        "0 */1 * * * *",
        "0 */15 * * * *",
        "0 0 */1 * * *",
        "0 0 0 * * *",
    ]
    for bad_interval in (7, 45, 7 * 60, 5 * 3600):
        with pytest.raises(ConfigurationError, match="retention-sweep-every"):
            RetentionPolicy(60, every_s=bad_interval)
    with pytest.raises(ConfigurationError, match="retention-batch"):
        RetentionPolicy(60, batch=0)


async def test_retention_without_durability_is_refused_at_startup(
    start_service: StartService, model_config: ModelConfig
) -> None:
    with pytest.raises(ConfigurationError, match="no-durability"):
        async with start_service(model_config, durable=False, retention=RetentionPolicy(60)):
            pass
