"""Tenants over every RPC, with a keyed service (tenants acme and globex) and a keyless service
(the anonymous tenant) on ONE database, as when both deployments share it.

Each tenant makes the same things under the same ids: a run paused on an approval (session
"s1", request id "r1") and a schedule "nightly"; and a schedule only it has ("only-<tenant>").
Then every tenant calls every RPC on every other tenant's objects: each is NOT_FOUND, or absent
from lists and usage. Ids shaped like another tenant's storage key ("acme/s1") are refused, and
nothing any of this did changed the owner's objects.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from timestep.api.auth import ApiKeys, hash_key
from timestep.app import TimestepService
from timestep.runtime.providers import ModelConfig
from timestep_client import MultitaskStrategy, RunStatus, TimestepClient
from timestep_client.v1 import runs_pb2, schedules_pb2, sessions_pb2, usage_pb2
from timestep_client.v1.runs_pb2 import INTERRUPTION_STATUS_PENDING

from tests.conftest import StartService
from tests.e2e.test_errors import details_of
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.harness import ServeProcess, connect, free_port, serve_environment
from timestep_testing.helpers import EMAIL_ARGS, WAIT, conversation, unique

ACME_KEY: Final = "ts_acme-cross-tenant-key-0123456789"
GLOBEX_KEY: Final = "ts_globex-cross-tenant-key-0123456789"
SESSION: Final = "s1"
REQUEST_ID: Final = "r1"
SCHEDULE: Final = "nightly"
# The callers, and the tenant each one's calls belong to ('' without API keys).
TENANTS: Final = {"acme": "acme", "globex": "globex", "anonymous": ""}


@dataclass(frozen=True)
class Owned:
    """What one tenant made."""

    # The tenant's name: what its storage keys start with ("acme/…", or "/…" for '').
    tenant: str
    client: TimestepClient
    run_id: str
    interruption_id: str
    state_json: str
    # A schedule id no other tenant has.
    schedule_id: str
    # The text its run started with (unique to the tenant: another tenant's session shows it).
    said: str


@pytest.fixture
async def keyless_service(durable_database: str, fake_openai: FakeOpenAI) -> AsyncIterator[ServeProcess]:
    """A `timestep serve` without API keys on the test's database: the anonymous tenant's."""
    env = serve_environment(durable_database, fake_openai.base_url, "test")
    process = ServeProcess(
        unique("keyless"), free_port(), ["--host", "127.0.0.1", "--replica-timeout", "3600"], env
    )
    await process.start()
    try:
        yield process
    finally:
        await process.end(signal.SIGTERM)


@pytest.fixture
async def keyed_service(
    start_service: StartService, model_config: ModelConfig, durable_database: str
) -> AsyncIterator[TimestepService]:
    # Tenant names as an operator would choose them: "acme/…" is what acme's storage keys look like.
    keys = ApiKeys.parse([f"acme:{hash_key(ACME_KEY)}", f"globex:{hash_key(GLOBEX_KEY)}"])
    async with start_service(model_config, api_keys=keys, database_url=durable_database) as service:
        yield service


@pytest.fixture
async def clients(
    keyed_service: TimestepService, keyless_service: ServeProcess
) -> AsyncIterator[dict[str, TimestepClient]]:
    keyed = f"127.0.0.1:{keyed_service.port}"
    async with (
        TimestepClient(keyed, api_key=ACME_KEY) as acme,
        TimestepClient(keyed, api_key=GLOBEX_KEY) as globex,
        connect(keyless_service.address) as anonymous,
    ):
        yield {"acme": acme, "globex": globex, "anonymous": anonymous}


async def make_objects(label: str, client: TimestepClient, fake_openai: FakeOpenAI) -> Owned:
    said = f"The code word is {unique(label)}. Tell Bob I'm late."
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id=unique("call")))
    run = await client.create_run(
        "assistant", said, session_id=SESSION, request_id=REQUEST_ID, wait=True, timeout=WAIT
    )
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED, run
    state = await client.get_state(run.id)
    only_mine = f"only-{label}"
    for schedule_id in (SCHEDULE, only_mine):
        await client.schedules.CreateSchedule(
            schedules_pb2.CreateScheduleRequest(
                schedule_id=schedule_id, cron="0 3 * * *", agent="assistant", input="Summarise the day."
            ),
            timeout=WAIT,
        )
    return Owned(TENANTS[label], client, run.id, run.interruptions[0].id, state.state_json, only_mine, said)


# ----- the table -------------------------------------------------------------------------------

Call = Callable[[TimestepClient, Owned], Awaitable[Any]]


async def _stream(client: TimestepClient, owned: Owned) -> list[Any]:
    request = runs_pb2.StreamRunEventsRequest(run_id=owned.run_id)
    return [message async for message in client.runs.StreamRunEvents(request, timeout=WAIT)]


def _schedule(method: str, request: Any) -> Call:
    return lambda client, owned: getattr(client.schedules, method)(
        request(schedule_id=owned.schedule_id), timeout=WAIT
    )


# Every RPC that names another tenant's object by id: NOT_FOUND, as for an id that never existed.
NOT_FOUND: Final[dict[str, Call]] = {
    "GetRun": lambda c, o: c.runs.GetRun(runs_pb2.GetRunRequest(run_id=o.run_id), timeout=WAIT),
    "StreamRunEvents": _stream,
    "ListInterruptions(run_id)": lambda c, o: c.runs.ListInterruptions(
        runs_pb2.ListInterruptionsRequest(run_id=o.run_id), timeout=WAIT
    ),
    "ApproveInterruption": lambda c, o: c.runs.ApproveInterruption(
        runs_pb2.ApproveInterruptionRequest(run_id=o.run_id, interruption_id=o.interruption_id), timeout=WAIT
    ),
    "RejectInterruption": lambda c, o: c.runs.RejectInterruption(
        runs_pb2.RejectInterruptionRequest(run_id=o.run_id, interruption_id=o.interruption_id), timeout=WAIT
    ),
    "ResumeRun": lambda c, o: c.runs.ResumeRun(runs_pb2.ResumeRunRequest(run_id=o.run_id), timeout=WAIT),
    "CancelRun": lambda c, o: c.runs.CancelRun(runs_pb2.CancelRunRequest(run_id=o.run_id), timeout=WAIT),
    "GetRunState": lambda c, o: c.runs.GetRunState(
        runs_pb2.GetRunStateRequest(run_id=o.run_id), timeout=WAIT
    ),
    "DeleteRun": lambda c, o: c.runs.DeleteRun(runs_pb2.DeleteRunRequest(run_id=o.run_id), timeout=WAIT),
    "KeepRun": lambda c, o: c.runs.KeepRun(runs_pb2.KeepRunRequest(run_id=o.run_id, keep=True), timeout=WAIT),
    "GetSchedule": _schedule("GetSchedule", schedules_pb2.GetScheduleRequest),
    "PauseSchedule": _schedule("PauseSchedule", schedules_pb2.PauseScheduleRequest),
    "ResumeSchedule": _schedule("ResumeSchedule", schedules_pb2.ResumeScheduleRequest),
    "DeleteSchedule": _schedule("DeleteSchedule", schedules_pb2.DeleteScheduleRequest),
}


# Every RPC that lists or sums: the other tenant's objects are not in it.
async def _listed_runs(client: TimestepClient, owned: Owned) -> bool:
    listed = await client.runs.ListRuns(runs_pb2.ListRunsRequest(page_size=500), timeout=WAIT)
    return owned.run_id in {run.id for run in listed.runs}


async def _listed_session_runs(client: TimestepClient, owned: Owned) -> bool:
    listed = await client.runs.ListRuns(runs_pb2.ListRunsRequest(session_id=SESSION), timeout=WAIT)
    return owned.run_id in {run.id for run in listed.runs}


async def _listed_interruptions(client: TimestepClient, owned: Owned) -> bool:
    listed = await client.runs.ListInterruptions(runs_pb2.ListInterruptionsRequest(), timeout=WAIT)
    return owned.interruption_id in {i.id for i in listed.interruptions}


async def _counted_usage(client: TimestepClient, owned: Owned) -> bool:
    # Each tenant's own run made one model call: more is someone else's.
    usage = await client.usage.GetUsage(usage_pb2.GetUsageRequest(), timeout=WAIT)
    return (usage.run_count, usage.total.requests) != (1, 1)


async def _listed_sessions(client: TimestepClient, owned: Owned) -> bool:
    # Each tenant has its own "s1", of one run: more runs in it are someone else's.
    listed = await client.sessions.ListSessions(sessions_pb2.ListSessionsRequest(), timeout=WAIT)
    return [(s.id, s.run_count) for s in listed.sessions] != [(SESSION, 1)]


async def _session_items(client: TimestepClient, owned: Owned) -> bool:
    listed = await client.sessions.ListSessionItems(
        sessions_pb2.ListSessionItemsRequest(session_id=SESSION, page_size=500), timeout=WAIT
    )
    return any(owned.said in item.item_json or item.run_id == owned.run_id for item in listed.items)


SEES: Final[dict[str, Callable[[TimestepClient, Owned], Awaitable[bool]]]] = {
    "ListSessions": _listed_sessions,
    "ListSessionItems": _session_items,
    "ListRuns": _listed_runs,
    "ListRuns(session_id)": _listed_session_runs,
    "ListInterruptions()": _listed_interruptions,
    "GetUsage": _counted_usage,
}

# Ids shaped like another tenant's storage key, on every RPC that takes a user-chosen id.
SLASHED: Final[dict[str, tuple[str, Call]]] = {
    "GetSchedule": (
        "schedule_id",
        lambda c, o: c.schedules.GetSchedule(
            schedules_pb2.GetScheduleRequest(schedule_id=f"{o.tenant}/{SCHEDULE}"), timeout=WAIT
        ),
    ),
    "PauseSchedule": (
        "schedule_id",
        lambda c, o: c.schedules.PauseSchedule(
            schedules_pb2.PauseScheduleRequest(schedule_id=f"{o.tenant}/{SCHEDULE}"), timeout=WAIT
        ),
    ),
    "ResumeSchedule": (
        "schedule_id",
        lambda c, o: c.schedules.ResumeSchedule(
            schedules_pb2.ResumeScheduleRequest(schedule_id=f"{o.tenant}/{SCHEDULE}"), timeout=WAIT
        ),
    ),
    "DeleteSchedule": (
        "schedule_id",
        lambda c, o: c.schedules.DeleteSchedule(
            schedules_pb2.DeleteScheduleRequest(schedule_id=f"{o.tenant}/{SCHEDULE}"), timeout=WAIT
        ),
    ),
    "CreateSchedule": (
        "schedule_id",
        lambda c, o: c.schedules.CreateSchedule(
            schedules_pb2.CreateScheduleRequest(
                schedule_id=f"{o.tenant}/{SCHEDULE}", cron="0 3 * * *", agent="assistant", input="Hi"
            ),
            timeout=WAIT,
        ),
    ),
    "CreateRun(session_id)": (
        "session_id",
        lambda c, o: c.runs.CreateRun(
            runs_pb2.CreateRunRequest(agent="assistant", input="Hi", session_id=f"{o.tenant}/{SESSION}"),
            timeout=WAIT,
        ),
    ),
    "CreateRun(request_id)": (
        "request_id",
        lambda c, o: c.runs.CreateRun(
            runs_pb2.CreateRunRequest(agent="assistant", input="Hi", request_id=f"{o.tenant}/{REQUEST_ID}"),
            timeout=WAIT,
        ),
    ),
    "GetSession": (
        "session_id",
        lambda c, o: c.sessions.GetSession(
            sessions_pb2.GetSessionRequest(session_id=f"{o.tenant}/{SESSION}"), timeout=WAIT
        ),
    ),
    "ListSessionItems": (
        "session_id",
        lambda c, o: c.sessions.ListSessionItems(
            sessions_pb2.ListSessionItemsRequest(session_id=f"{o.tenant}/{SESSION}"), timeout=WAIT
        ),
    ),
    "DeleteSession": (
        "session_id",
        lambda c, o: c.sessions.DeleteSession(
            sessions_pb2.DeleteSessionRequest(session_id=f"{o.tenant}/{SESSION}", delete_runs=True),
            timeout=WAIT,
        ),
    ),
    "ListRuns(session_id)": (
        "session_id",
        lambda c, o: c.runs.ListRuns(
            runs_pb2.ListRunsRequest(session_id=f"{o.tenant}/{SESSION}"), timeout=WAIT
        ),
    ),
    "ImportRunState(session_id)": (
        "session_id",
        lambda c, o: c.runs.ImportRunState(
            runs_pb2.ImportRunStateRequest(
                agent="assistant", state_json=o.state_json, session_id=f"{o.tenant}/{SESSION}"
            ),
            timeout=WAIT,
        ),
    ),
}


async def status_of(call: Awaitable[Any]) -> tuple[grpc.StatusCode, list[str]]:
    """The call's status code and, when refused, the fields its BadRequest names."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        status = rpc_status.from_call(error)
        fields = [
            v.field
            for bad in (details_of(status, error_details_pb2.BadRequest) if status else [])
            for v in bad.field_violations
        ]
        return error.code(), fields
    return grpc.StatusCode.OK, []


async def test_no_tenant_reaches_another_tenants_objects_through_any_rpc(
    clients: dict[str, TimestepClient], fake_openai: FakeOpenAI
) -> None:
    owned = {tenant: await make_objects(tenant, client, fake_openai) for tenant, client in clients.items()}
    pairs = [(owner, viewer) for owner in owned for viewer in clients if viewer != owner]
    problems: list[str] = []

    for owner, viewer in pairs:
        mine, theirs = owned[viewer], owned[owner]
        for name, call in NOT_FOUND.items():
            code, _ = await status_of(call(clients[viewer], theirs))
            if code != grpc.StatusCode.NOT_FOUND:
                problems.append(f"{viewer} {name} on {owner}'s object: {code.name}, not NOT_FOUND")
        for name, sees in SEES.items():
            if await sees(clients[viewer], theirs):
                problems.append(f"{viewer} {name} shows {owner}'s objects")
        listed = await clients[viewer].schedules.ListSchedules(schedules_pb2.ListSchedulesRequest())
        if [s.id for s in listed.schedules] != [SCHEDULE, mine.schedule_id]:
            problems.append(f"{viewer} ListSchedules shows {[s.id for s in listed.schedules]}")
        for name, (field, slashed_call) in SLASHED.items():
            code, fields = await status_of(slashed_call(clients[viewer], theirs))
            if (code, fields) != (grpc.StatusCode.INVALID_ARGUMENT, [field]):
                problems.append(f"{viewer} {name} with {owner}'s key shape: {code.name} {fields}")
        assert mine.run_id != theirs.run_id  # request id "r1" of each tenant made its own run

    # Deleting one's own "nightly" leaves every other tenant's.
    await clients["anonymous"].schedules.DeleteSchedule(
        schedules_pb2.DeleteScheduleRequest(schedule_id=SCHEDULE)
    )
    # The owners' objects are as they made them: nothing above paused, decided or deleted them.
    for tenant, thing in owned.items():
        run = await thing.client.get_run(thing.run_id)
        pending = [i.status for i in run.interruptions]
        if run.status != RunStatus.RUN_STATUS_INTERRUPTED or pending != [INTERRUPTION_STATUS_PENDING]:
            problems.append(f"{tenant}'s run changed: {run}")
        listed = await thing.client.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest())
        states = {s.id: s.state for s in listed.schedules}
        expected = {thing.schedule_id: schedules_pb2.SCHEDULE_STATE_ACTIVE}
        if tenant != "anonymous":  # the anonymous tenant deleted its "nightly" above
            expected[SCHEDULE] = schedules_pb2.SCHEDULE_STATE_ACTIVE
        if states != expected:
            problems.append(f"{tenant}'s schedules changed: {states}")

    # A session is each tenant's own: a later run in "s1" sees only its own tenant's history, and
    # interrupting the run that holds "s1" (paused on its approval) cancels that tenant's run only.
    for n, (tenant, client) in enumerate(clients.items()):
        fake_openai.script(text("Noted."))
        await client.create_run(
            "assistant",
            "What was the code word?",
            session_id=SESSION,
            wait=True,
            timeout=WAIT,
            multitask_strategy=MultitaskStrategy.MULTITASK_STRATEGY_INTERRUPT,
        )
        seen = " ".join(content for _, content in conversation(fake_openai.requests[-1]))
        for other, theirs in owned.items():
            if other != tenant and theirs.said in seen:
                problems.append(f"{tenant}'s session {SESSION!r} shows {other}'s conversation")
        if owned[tenant].said not in seen:
            problems.append(f"{tenant}'s session {SESSION!r} lost its own conversation")
        for later in list(owned.values())[n + 1 :]:
            if (await later.client.get_run(later.run_id)).status != RunStatus.RUN_STATUS_INTERRUPTED:
                problems.append(f"{tenant}'s run in {SESSION!r} interrupted another tenant's")

    assert not problems, "\n".join(problems)
