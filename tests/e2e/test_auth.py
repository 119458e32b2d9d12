"""API keys and tenants over the real gRPC port: UNAUTHENTICATED without a valid key, and each
tenant sees only its own runs, interruptions, states, events, schedules, sessions and usage —
another tenant's ids are NOT_FOUND, exactly like ids that do not exist."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from timestep.api.auth import ApiKeyConfigError, ApiKeys, check_exposure, hash_key
from timestep.app import TimestepService
from timestep.commands.output import USAGE
from timestep.runtime.providers import ModelConfig
from timestep.settings import ConfigurationError
from timestep_client import RunStatus, TimestepClient
from timestep_client.v1 import runs_pb2, schedules_pb2

from tests.conftest import StartService
from tests.e2e.test_cli import REPO, cli_environment
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.harness import run_to_completion
from timestep_testing.helpers import (
    EMAIL_ARGS,
    WAIT,
    collect_events,
    conversation,
    db_state,
    expect_rpc_error,
    pending,
    tenant_keys,
    unique,
)

ACME_KEY = "ts_acme-test-key-0123456789abcdef"
GLOBEX_KEY = "ts_globex-test-key-0123456789abcdef"
KEYS = ApiKeys.parse([f"acme:{hash_key(ACME_KEY)}", f"globex:{hash_key(GLOBEX_KEY)}"])


@pytest.fixture
async def keyed_service(
    start_service: StartService, model_config: ModelConfig
) -> AsyncIterator[TimestepService]:
    # Tenants of this test's own: what another test stored is invisible to them.
    async with start_service(model_config, api_keys=tenant_keys(ACME_KEY, GLOBEX_KEY)) as service:
        yield service


def client_for(service: TimestepService, api_key: str | None) -> TimestepClient:
    return TimestepClient(f"127.0.0.1:{service.port}", api_key=api_key)


@pytest.fixture
async def acme(keyed_service: TimestepService) -> AsyncIterator[TimestepClient]:
    async with client_for(keyed_service, ACME_KEY) as client:
        yield client


@pytest.fixture
async def globex(keyed_service: TimestepService) -> AsyncIterator[TimestepClient]:
    async with client_for(keyed_service, GLOBEX_KEY) as client:
        yield client


async def paused_run(client: TimestepClient, fake_openai: FakeOpenAI, **kwargs: Any) -> runs_pb2.Run:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id=unique("call")))
    run = await client.create_run("assistant", "Tell Bob I'm late", wait=True, timeout=WAIT, **kwargs)
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED, run
    return run


# ----- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ((), "requires an API key"),
        ((("authorization", "Bearer ts_not-a-key"),), "not valid"),
        ((("authorization", f"Basic {ACME_KEY}"),), "requires an API key"),
        ((("authorization", "Bearer"),), "requires an API key"),
    ],
    ids=["missing", "wrong", "other-scheme", "empty"],
)
async def test_calls_without_a_valid_key_are_unauthenticated_and_write_nothing(
    keyed_service: TimestepService,
    database_url: str,
    metadata: tuple[tuple[str, str], ...],
    message: str,
) -> None:
    before = await db_state(database_url)
    async with client_for(keyed_service, None) as client:
        create = client.runs.CreateRun(
            runs_pb2.CreateRunRequest(agent="assistant", input="hi"), metadata=metadata, timeout=WAIT
        )
        error = await expect_rpc_error(create, grpc.StatusCode.UNAUTHENTICATED)
        assert message in (error.details() or "")
        await expect_rpc_error(
            client.runs.ListRuns(runs_pb2.ListRunsRequest(), metadata=metadata, timeout=WAIT),
            grpc.StatusCode.UNAUTHENTICATED,
        )
        stream = client.runs.StreamRunEvents(
            runs_pb2.StreamRunEventsRequest(run_id="run_x"), metadata=metadata, timeout=WAIT
        )
        await expect_rpc_error(stream.read(), grpc.StatusCode.UNAUTHENTICATED)
    assert await db_state(database_url) == before


async def test_health_and_reflection_stay_open_unless_protected(
    start_service: StartService, model_config: ModelConfig
) -> None:
    for protect in (False, True):
        async with (
            start_service(model_config, api_keys=KEYS, authenticate_health=protect) as service,
            client_for(service, None) as anonymous,
            client_for(service, ACME_KEY) as keyed,
        ):
            check = health_pb2.HealthCheckRequest(service="timestep.v1.RunService")
            if protect:
                await expect_rpc_error(
                    health_pb2_grpc.HealthStub(anonymous.channel).Check(check, timeout=WAIT),
                    grpc.StatusCode.UNAUTHENTICATED,
                )
                await expect_rpc_error(list_services(anonymous), grpc.StatusCode.UNAUTHENTICATED)
            else:
                answer = await health_pb2_grpc.HealthStub(anonymous.channel).Check(check, timeout=WAIT)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
                assert "timestep.v1.RunService" in await list_services(anonymous)
            answer = await health_pb2_grpc.HealthStub(keyed.channel).Check(check, timeout=WAIT)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            assert "timestep.v1.RunService" in await list_services(keyed)


async def list_services(client: TimestepClient) -> list[str]:
    """Server reflection's list of services (what `grpcurl list` shows)."""
    call = reflection_pb2_grpc.ServerReflectionStub(client.channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=WAIT
    )
    async for response in call:
        return [service.name for service in response.list_services_response.service]
    raise AssertionError("reflection sent no answer")


# ----- isolation -----------------------------------------------------------------------------


async def test_another_tenants_run_is_not_found_by_every_rpc_and_left_untouched(
    acme: TimestepClient, globex: TimestepClient, fake_openai: FakeOpenAI, database_url: str
) -> None:
    run = await paused_run(acme, fake_openai)
    interruption = pending(run)[0]
    before = await db_state(database_url)

    for call in (
        globex.get_run(run.id),
        globex.approve(run.id, interruption.id),
        globex.reject(run.id, interruption.id, "no"),
        globex.resume(run.id),
        globex.cancel(run.id),
        globex.get_state(run.id),
        globex.list_interruptions(run.id),
    ):
        error = await expect_rpc_error(call, grpc.StatusCode.NOT_FOUND)
        assert run.id in (error.details() or "")  # the same message as for an id that never existed
    stream = globex.runs.StreamRunEvents(runs_pb2.StreamRunEventsRequest(run_id=run.id), timeout=WAIT)
    await expect_rpc_error(stream.read(), grpc.StatusCode.NOT_FOUND)

    assert list((await globex.list_runs()).runs) == []
    assert list((await globex.list_interruptions()).interruptions) == []
    assert (await globex.get_usage()).run_count == 0
    assert await db_state(database_url) == before

    # The owner still sees and decides it.
    assert [r.id for r in (await acme.list_runs()).runs] == [run.id]
    assert [i.id for i in (await acme.list_interruptions()).interruptions] == [interruption.id]
    await acme.approve(run.id, interruption.id)
    fake_openai.script(text("Bob has been told."))
    assert (await acme.resume(run.id, wait=True, timeout=WAIT)).status == RunStatus.RUN_STATUS_COMPLETED
    assert (await acme.get_usage()).run_count == 1
    events = await collect_events(acme, run.id)
    assert events[-1].sequence == (await acme.get_run(run.id)).last_sequence


async def test_request_ids_and_sessions_are_per_tenant(
    acme: TimestepClient, globex: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    request_id, session = unique("req"), unique("session")
    fake_openai.script(text("Hello Ada."), text("I don't know your name."))

    mine = await acme.create_run(
        "assistant", "My name is Ada.", session_id=session, request_id=request_id, wait=True, timeout=WAIT
    )
    theirs = await globex.create_run(
        "assistant", "What is my name?", session_id=session, request_id=request_id, wait=True, timeout=WAIT
    )

    assert mine.id != theirs.id  # one tenant's idempotency key cannot return another's run
    assert conversation(fake_openai.requests[1]) == [("user", "What is my name?")]  # no shared history


async def test_schedules_are_per_tenant(acme: TimestepClient, globex: TimestepClient) -> None:
    request = schedules_pb2.CreateScheduleRequest(
        schedule_id="nightly", cron="0 3 * * *", agent="assistant", input="Summarise the day."
    )
    await acme.schedules.CreateSchedule(request, timeout=WAIT)
    await expect_rpc_error(
        globex.schedules.GetSchedule(schedules_pb2.GetScheduleRequest(schedule_id="nightly"), timeout=WAIT),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_rpc_error(
        globex.schedules.DeleteSchedule(
            schedules_pb2.DeleteScheduleRequest(schedule_id="nightly"), timeout=WAIT
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    listed = await globex.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest(), timeout=WAIT)
    assert [s.id for s in listed.schedules] == []

    await globex.schedules.CreateSchedule(request, timeout=WAIT)  # the same id, another tenant's
    for client in (acme, globex):
        listed = await client.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest(), timeout=WAIT)
        assert [s.id for s in listed.schedules] == ["nightly"]
        await client.schedules.DeleteSchedule(schedules_pb2.DeleteScheduleRequest(schedule_id="nightly"))


# ----- configuration -------------------------------------------------------------------------


def test_key_entries_are_hashes_and_bad_entries_say_how_to_fix_them(tmp_path: Any) -> None:
    keys = ApiKeys.load(f"acme:{hash_key(ACME_KEY)}")
    assert keys.tenant_for(ACME_KEY) == "acme"
    assert keys.tenant_for(GLOBEX_KEY) is None
    assert ACME_KEY not in repr(keys)

    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# operators' keys\nglobex:{hash_key(GLOBEX_KEY)}  # rotated 2026-11\n\n")
    both = ApiKeys.load(f"acme:{hash_key(ACME_KEY)}", str(keys_file))
    assert (both.tenant_for(ACME_KEY), both.tenant_for(GLOBEX_KEY)) == ("acme", "globex")

    for bad in (f"acme:{ACME_KEY}", "acme:sha256:xyz", f"a b:{hash_key(ACME_KEY)}"):
        with pytest.raises(ApiKeyConfigError, match="timestep api-keys create"):
            ApiKeys.load(bad)
    with pytest.raises(ApiKeyConfigError, match="cannot read"):
        ApiKeys.load("", str(tmp_path / "missing"))


def test_without_keys_the_service_refuses_a_public_address_unless_told() -> None:
    with pytest.raises(ConfigurationError, match="--allow-unauthenticated"):
        check_exposure("0.0.0.0", ApiKeys(), allow_unauthenticated=False)
    check_exposure("0.0.0.0", ApiKeys(), allow_unauthenticated=True)
    for loopback in ("127.0.0.1", "localhost", "::1", "[::1]"):
        check_exposure(loopback, ApiKeys(), allow_unauthenticated=False)
    check_exposure("0.0.0.0", KEYS, allow_unauthenticated=False)


async def test_serve_on_a_public_address_without_keys_exits_with_the_reason() -> None:
    code, _, stderr = await run_to_completion(
        sys.executable, "-m", "timestep", "serve", "--host", "0.0.0.0", "--port", "0",
        limit_s=60, cwd=REPO, env=cli_environment(),
    )  # fmt: skip
    assert code == USAGE
    assert "refusing to listen on 0.0.0.0 without API keys" in stderr


async def test_the_cli_creates_keys_and_sends_them(
    start_service: StartService, model_config: ModelConfig
) -> None:
    code, stdout, _ = await run_to_completion(
        sys.executable, "-m", "timestep", "api-keys", "create", "--tenant", "initech", "--json",
        limit_s=60, cwd=REPO, env=cli_environment(),
    )  # fmt: skip
    assert code == 0
    created = json.loads(stdout)
    keys = ApiKeys.load(created["entry"])
    assert keys.tenant_for(created["api_key"]) == "initech"
    assert created["api_key"] not in created["entry"]

    async with start_service(model_config, api_keys=keys) as service:
        target = f"127.0.0.1:{service.port}"
        base = (sys.executable, "-m", "timestep", "--target", target)
        code, _, stderr = await run_to_completion(
            *base, "runs", "list", limit_s=60, cwd=REPO, env=cli_environment()
        )
        assert (code, "API key" in stderr) == (8, True)
        environment = {**cli_environment(), "TIMESTEP_API_KEY": created["api_key"]}
        code, stdout, _ = await run_to_completion(
            *base, "runs", "list", "--json", limit_s=60, cwd=REPO, env=environment
        )
        assert code == 0
