"""Property-based fuzzing: of every RPC of every service, with requests built from the proto
descriptors (see tests/adversarial/requests.py); and, deeper, of the two RPCs that take free-form
input: ImportRunState (mutations of real exported RunStates, Python and TypeScript) and
CreateRun (odd text, items, metadata, ids).

Whatever the input: the status is never UNKNOWN or INTERNAL (a crash), a refused call leaves
the database exactly as it was (every table of every schema, DBOS's included), an accepted one
shows nothing of another tenant's, and a run it made is consistent.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, event, given, note, seed, settings
from hypothesis import strategies as st
from timestep.runtime.providers import ModelConfig
from timestep.store.database import resolve_server
from timestep_client import RunStatus, StateFormat, TimestepClient
from timestep_client.v1 import agents_pb2, runs_pb2, schedules_pb2, sessions_pb2, usage_pb2

from tests.adversarial.requests import messages
from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, tool_call
from timestep_testing.harness import create_database, database_fingerprint, drop_database
from timestep_testing.helpers import (
    EMAIL_ARGS,
    WAIT,
    collect_events,
    db_state,
    sequences,
    tenant_keys,
    unique,
)

CRASHES: Final = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})
# One service and database serve every example of a test: that sharing is the point (state
# left behind by one example must not break the next).
FUZZ: Final = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

odd_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from(["\u202e", "\ufeff", "💥", "\x00"]),
    max_size=40,
)
huge_numbers = st.sampled_from([2**63, -(2**63) - 1, 10**400, 1e308, -0.0, 2**31])
scalars = st.none() | st.booleans() | st.integers() | huge_numbers | st.floats(allow_nan=False) | odd_text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def mutations(draw: st.DrawFn) -> list[tuple[str, list[int], Any]]:
    """1-3 edits, each (operation, a path of child picks, a value), applied to a real state."""
    operation = st.sampled_from(["drop", "replace", "schema", "wrap", "truncate"])
    path = st.lists(st.integers(min_value=0, max_value=50), min_size=0, max_size=6)
    return draw(st.lists(st.tuples(operation, path, json_values), min_size=1, max_size=3))


def _containers(node: Any, picks: list[int]) -> list[tuple[Any, Any]]:
    """(container, key) pairs along a path chosen by `picks` (each modulo the child count)."""
    found: list[tuple[Any, Any]] = []
    for pick in picks:
        keys: list[Any] = (
            list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        )
        if not keys:
            break
        key = keys[pick % len(keys)]
        found.append((node, key))
        node = node[key]
    return found


def mutate(state_json: str, edits: list[tuple[str, list[int], Any]]) -> str:
    state = json.loads(state_json)
    truncate_at: int | None = None
    for operation, picks, value in edits:
        if operation == "schema":
            state["$schemaVersion"] = value
            continue
        if operation == "truncate":
            truncate_at = picks[0] if picks else 0
            continue
        path = _containers(state, picks or [0])
        if not path:
            continue
        container, key = path[-1]
        if operation == "drop":
            del container[key]
        elif operation == "replace":
            container[key] = value
        else:  # wrap: the right value at the wrong type
            container[key] = [copy.deepcopy(container[key])]
    text = json.dumps(state, ensure_ascii=False)
    return text[: len(text) * truncate_at // 51] if truncate_at is not None else text


async def expect_no_crash(call: Any) -> Any:
    """The call's response, or None if it was refused with a status that is not a crash."""
    try:
        response = await asyncio.wait_for(call, WAIT)
        event("accepted")
        return response
    except grpc.aio.AioRpcError as refused:
        error = refused
    event(f"refused: {error.code().name}")  # --hypothesis-show-statistics shows the mix
    assert error.code() not in CRASHES, f"{error.code().name}: {error.details()}"
    return None


@pytest.fixture
async def paused_states(client: TimestepClient, fake_openai: FakeOpenAI) -> dict[str, str]:
    """A run paused on send_email, exported in both formats."""
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run("assistant", "Email Bob that I'm running late.", wait=True, timeout=WAIT)
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED, run
    return {
        "python": (await client.get_state(run.id)).state_json,
        "typescript": (await client.get_state(run.id, StateFormat.STATE_FORMAT_TYPESCRIPT)).state_json,
    }


@FUZZ
@given(
    writer=st.sampled_from(["python", "typescript"]),
    edits=mutations(),
    agent=st.sampled_from(["assistant", "billing"]),
)
async def test_import_run_state_never_crashes_nor_leaves_half_a_run(
    client: TimestepClient,
    database_url: str,
    paused_states: dict[str, str],
    writer: str,
    edits: list[tuple[str, list[int], Any]],
    agent: str,
) -> None:
    state_json = mutate(paused_states[writer], edits)
    before = await db_state(database_url)

    imported = await expect_no_crash(
        client.runs.ImportRunState(
            runs_pb2.ImportRunStateRequest(agent=agent, state_json=state_json), timeout=WAIT
        )
    )

    if imported is None:
        assert await db_state(database_url) == before, "a refused import changed the database"
        return
    run = await client.get_run(imported.run.id)
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED, run
    assert run.interruptions, "an imported run is paused on at least one interruption"
    exported = await client.get_state(run.id)
    assert json.loads(exported.state_json), "the imported run's state can be exported"
    await expect_no_crash(client.get_state(run.id, StateFormat.STATE_FORMAT_TYPESCRIPT))
    assert sequences(await collect_events(client, run.id)) == list(range(1, run.last_sequence + 1))


input_items = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system", "developer", "tool", ""]),
            "content": odd_text | json_values,
        }
    )
    | st.dictionaries(odd_text, json_values, max_size=3),
    max_size=3,
)


@FUZZ
@given(
    agent=st.sampled_from(["assistant", "billing"]) | odd_text,
    text_input=odd_text,
    items=st.none() | input_items.map(json.dumps) | odd_text,
    metadata=st.dictionaries(odd_text, odd_text, max_size=4),
    request_id=odd_text,
    session_id=odd_text,
    model=st.sampled_from(["", "gpt-4.1", "ollama/llama3.2", "acme/x"]) | odd_text,
)
async def test_create_run_never_crashes_nor_leaves_half_a_run(
    client: TimestepClient,
    database_url: str,
    agent: str,
    text_input: str,
    items: str | None,
    metadata: dict[str, str],
    request_id: str,
    session_id: str,
    model: str,
) -> None:
    request = runs_pb2.CreateRunRequest(
        agent=agent,
        input=text_input,
        input_items_json=items or "",
        metadata=metadata,
        request_id=request_id,
        session_id=session_id,
        model=model,
        wait=True,  # the run has ended (the fake has no script: its model call fails) before we look
    )
    before = await db_state(database_url)

    created = await expect_no_crash(client.runs.CreateRun(request, timeout=WAIT))

    if created is None:
        assert await db_state(database_url) == before, "a refused CreateRun changed the database"
        return
    run = await client.get_run(created.run.id)
    assert run.status in (RunStatus.RUN_STATUS_FAILED, RunStatus.RUN_STATUS_COMPLETED), run
    assert run.agent == agent
    assert dict(run.metadata) == metadata
    assert sequences(await collect_events(client, run.id)) == list(range(1, run.last_sequence + 1))


# ----- every RPC of every service ------------------------------------------------------------

# Replay a failure with the same seed (hypothesis also prints the failing example).
SEED: Final = int(os.environ.get("TIMESTEP_FUZZ_SEED", "20261203"))
RPC_EXAMPLES: Final = int(os.environ.get("TIMESTEP_FUZZ_EXAMPLES", "12"))
# Every service the server offers but reflection (a bidirectional stream of gRPC's own that
# reads nothing of ours) and WebhookService: a webhook the fuzzer made would be called at any
# URL it made up, and tests send traffic only to loopback (tests/e2e/test_webhooks.py covers it).
SERVICES: Final = [
    service
    for module in (runs_pb2, agents_pb2, schedules_pb2, sessions_pb2, usage_pb2, health_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
]
RPCS: Final = [method for service in SERVICES for method in service.methods]
# Columns that change with nobody calling, left out of the database fingerprint.
CHANGE_ON_THEIR_OWN: Final = {
    "public.replicas": ["heartbeat_time"],  # each replica beats every few seconds
}
ACME_KEY: Final = "ts_fuzz-acme-key-0123456789abcdef"
GLOBEX_KEY: Final = "ts_fuzz-globex-key-0123456789abcdef"
YEARLY: Final = "0 0 1 1 *"
# Streams that never end by design: health's Watch, and WatchRuns (its first answer comes at once
# without a cursor, and once there is a change after a cursor).
ENDLESS: Final = {"grpc.health.v1.Health.Watch", "timestep.v1.RunService.WatchRuns"}


@dataclass(frozen=True)
class Tenants:
    """The fuzzed tenant (acme), the other one (globex), and the ids the fuzzer tries: of
    objects of both, so another tenant's ids are always among the candidates."""

    acme: TimestepClient
    globex: TimestepClient
    database_url: str
    known: tuple[str, ...]
    globex_ids: tuple[str, ...]


@pytest.fixture(scope="module")
def fuzz_database() -> Iterator[str]:
    """A database of this module's own: its fingerprint covers only what the fuzzer did."""
    server = asyncio.run(resolve_server()).dsn
    url = asyncio.run(create_database(server, "timestep_fuzz"))
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))


async def _objects(client: TimestepClient, fake: FakeOpenAI, name: str) -> list[str]:
    """A run INTERRUPTED on send_email and a paused schedule; their ids."""
    fake.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run(
        "assistant", "Email Bob.", request_id=f"{name}-request", wait=True, timeout=WAIT
    )
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED, run
    await client.schedules.CreateSchedule(
        schedules_pb2.CreateScheduleRequest(
            schedule_id=f"{name}-schedule", cron=YEARLY, agent="assistant", input="hi"
        )
    )
    await client.schedules.PauseSchedule(schedules_pb2.PauseScheduleRequest(schedule_id=f"{name}-schedule"))
    return [run.id, run.interruptions[0].id, f"{name}-request", f"{name}-schedule", run.session_id]


@pytest.fixture
async def tenants(
    fuzz_database: str, start_service: StartService, model_config: ModelConfig, fake_openai: FakeOpenAI
) -> AsyncIterator[Tenants]:
    keys = tenant_keys(ACME_KEY, GLOBEX_KEY)
    async with (
        start_service(model_config, database_url=fuzz_database, api_keys=keys) as service,
        TimestepClient(f"127.0.0.1:{service.port}", api_key=ACME_KEY) as acme,
        TimestepClient(f"127.0.0.1:{service.port}", api_key=GLOBEX_KEY) as globex,
    ):
        name = unique("fuzz")
        acme_ids = await _objects(acme, fake_openai, f"{name}-acme")
        globex_ids = await _objects(globex, fake_openai, f"{name}-globex")
        names = ["assistant", "billing", "gpt-4.1", "ollama/llama3.2", "timestep.v1.RunService"]
        yield Tenants(acme, globex, fuzz_database, (*acme_ids, *globex_ids, *names), tuple(globex_ids))


async def _settle(tenants: Tenants) -> None:
    """Wait until nothing happens on its own: no run QUEUED or RUNNING, no DBOS workflow
    pending, no schedule of the fuzzed tenant active (each is paused: it would fire)."""
    listed = await tenants.acme.schedules.ListSchedules(schedules_pb2.ListSchedulesRequest(), timeout=WAIT)
    for schedule in listed.schedules:
        if schedule.state == schedules_pb2.SCHEDULE_STATE_ACTIVE:
            request = schedules_pb2.PauseScheduleRequest(schedule_id=schedule.id)
            await tenants.acme.schedules.PauseSchedule(request, timeout=WAIT)
    connection = await asyncpg.connect(tenants.database_url)
    try:

        async def quiet() -> None:
            # The database announces none of these: poll it, bounded by WAIT.
            while await connection.fetchval(ACTIVE_SQL):  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        await asyncio.wait_for(quiet(), WAIT)
    finally:
        await connection.close()


ACTIVE_SQL: Final = """
SELECT (SELECT count(*) FROM runs WHERE status IN ('queued', 'running'))
     + (SELECT count(*) FROM dbos.workflow_status WHERE status IN ('PENDING', 'ENQUEUED'))
"""


async def _call(
    channel: grpc.aio.Channel, method: MethodDescriptor, request: Message
) -> list[Message] | grpc.aio.AioRpcError:
    """The responses of one call over the raw channel (the client's interceptors add the key),
    or its error."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_type = message_factory.GetMessageClass(method.output_type)
    codec: dict[str, Any] = {
        "request_serializer": lambda message: message.SerializeToString(),
        "response_deserializer": response_type.FromString,
    }
    try:
        if not method.server_streaming:
            return [await channel.unary_unary(path, **codec)(request, timeout=WAIT)]
        call = channel.unary_stream(path, **codec)(request, timeout=WAIT)
        try:
            if method.full_name in ENDLESS:
                return [await call.read()]  # it never ends by design: its first answer is the one
            return [response async for response in call]
        finally:
            call.cancel()
    except grpc.aio.AioRpcError as error:
        return error


@pytest.mark.parametrize("method", RPCS, ids=[method.full_name for method in RPCS])
@settings(
    max_examples=RPC_EXAMPLES,
    deadline=None,
    database=None,  # the seed alone decides the examples
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@seed(SEED)
@given(data=st.data())
async def test_every_rpc_refuses_bad_input_cleanly(
    method: MethodDescriptor, tenants: Tenants, data: st.DataObject
) -> None:
    note(f"seed {SEED} (TIMESTEP_FUZZ_SEED), method {method.full_name}")
    request = data.draw(messages(method.input_type, tenants.known), label="request")
    await _settle(tenants)
    before = await database_fingerprint(tenants.database_url, CHANGE_ON_THEIR_OWN)

    outcome = await _call(tenants.acme.channel, method, request)

    if isinstance(outcome, grpc.aio.AioRpcError):
        event(f"refused: {outcome.code().name}")
        assert outcome.code() not in CRASHES, f"{outcome.code().name}: {outcome.details()}"
        after = await database_fingerprint(tenants.database_url, CHANGE_ON_THEIR_OWN)
        changed = sorted(table for table in before if before[table] != after.get(table))
        assert not changed, f"a refused call ({outcome.code().name}: {outcome.details()}) changed {changed}"
        return
    event("accepted")
    answered = b"".join(response.SerializeToString() for response in outcome)
    asked = request.SerializeToString()
    leaked = [name for name in tenants.globex_ids if name.encode() in answered and name.encode() not in asked]
    assert not leaked, f"another tenant's objects in the answer: {leaked}"
