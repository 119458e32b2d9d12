"""Property-based fuzzing of the two RPCs that take free-form input: ImportRunState (mutations of
real exported RunStates, Python and TypeScript) and CreateRun (odd text, items, metadata, ids).

Whatever the input: the status is never UNKNOWN or INTERNAL (a crash), a refused call leaves
the database exactly as it was, and an accepted one leaves a consistent run behind.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any, Final

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from timestep_client import RunStatus, StateFormat, TimestepClient
from timestep_client.v1 import runs_pb2

from tests.e2e.helpers import EMAIL_ARGS, WAIT, collect_events, db_state, sequences
from tests.fakes.openai_responses import FakeOpenAI, tool_call

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
