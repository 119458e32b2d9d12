"""Every RPC's unhappy paths, table-driven, over gRPC and (the same table) Connect.

Each case puts the service in a state (e.g. a run INTERRUPTED on `send_email`), makes one
failing call and checks:

* the exact gRPC status code;
* that the message says what to do (key phrases);
* the google.rpc details: ErrorInfo (reason, domain) always, BadRequest (the offending field)
  for INVALID_ARGUMENT and only then, PreconditionFailure (reason, the run, message) for
  FAILED_PRECONDITION and only then;
* that the database is unchanged (row counts plus a checksum of every run's and
  interruption's mutable columns).
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, cast

import aiohttp
import grpc
import pytest
from agents import RunContextWrapper
from agents.run_state import RunState
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from timestep.app import TimestepService
from timestep.examples.agents import assistant
from timestep.settings import MAX_SCHEDULE_INPUT_BYTES, Limits
from timestep_client import RunStatus, TimestepClient
from timestep_client.v1 import agents_pb2, runs_pb2, schedules_pb2, usage_pb2

from timestep_testing import connect
from timestep_testing.fakes.openai_responses import FakeOpenAI, error, text, tool_call
from timestep_testing.helpers import EMAIL_ARGS, WAIT, collect_events, db_state, expect_rpc_error, unique

NOT_FOUND: Final = grpc.StatusCode.NOT_FOUND
INVALID_ARGUMENT: Final = grpc.StatusCode.INVALID_ARGUMENT
FAILED_PRECONDITION: Final = grpc.StatusCode.FAILED_PRECONDITION
ALREADY_EXISTS: Final = grpc.StatusCode.ALREADY_EXISTS

ERROR_DOMAIN: Final = "timestep.dev"
TYPE_URL_PREFIX: Final = "type.googleapis.com/"
MISSING_RUN: Final = "run_00000000000000000000000000000000"
MISSING_INTERRUPTION: Final = "int_00000000000000000000000000000000"
ORIGINAL_INPUT: Final = "Say hello."
REQUIRED_RUN_ID: Final = "run_id is required: pass the id CreateRun returned"
ONLY_INTERRUPTED_CAN_RESUME: Final = "only an INTERRUPTED run can be resumed"
ONLY_UNFINISHED_CAN_CANCEL: Final = "only QUEUED, RUNNING or INTERRUPTED runs can be cancelled"
DECIDE_ONLY_WHILE_INTERRUPTED: Final = "interruptions can only be decided while the run is INTERRUPTED"
DECISION_FINAL: Final = "a decision cannot be changed"
NO_RUN_STATE: Final = "only an INTERRUPTED run has a RunState to export"
LOAD_HINT: Final = "Pass the unmodified RunState.to_string() of a run that started with this agent"
REQUEST_ID_REUSED: Final = "Use a new request_id for a new run, or repeat the original arguments"
RUN_STATE_HINT: Final = "the string RunState.to_string() returned"
ITEMS_SHAPE: Final = "input_items_json must be a non-empty JSON array of objects"
TOO_MANY_METADATA: Final = {f"key{i}": "value" for i in range(65)}
MAX_STATE_BYTES: Final = Limits().max_state_bytes
MAX_INPUT_BYTES: Final = Limits().max_input_bytes
MAX_TEXT_BYTES: Final = Limits().max_text_bytes
FIELD_TOO_LONG: Final = "FIELD_TOO_LONG"


# ----- world: the state a case starts from --------------------------------------------------


class Setup(enum.Enum):
    NONE = "nothing"
    COMPLETED = "a COMPLETED run made with a request_id"
    FAILED = "a FAILED run (the model answered 400)"
    INTERRUPTED = "a run INTERRUPTED on send_email"
    TWO_INTERRUPTED = "two runs INTERRUPTED on send_email"
    APPROVED = "an INTERRUPTED run whose interruption is approved"
    REJECTED = "an INTERRUPTED run whose interruption is rejected"
    CANCELLED = "a run CANCELLED while INTERRUPTED"
    TWO_RUNS = "two COMPLETED runs and a ListRuns page token for agent=assistant"


@dataclass(frozen=True)
class World:
    run_id: str = ""
    interruption_id: str = ""
    # The interruption of another run (TWO_INTERRUPTED).
    other_interruption_id: str = ""
    # The Agents SDK RunState JSON of an INTERRUPTED run, as GetRunState returned it.
    state_json: str = ""
    request_id: str = ""
    page_token: str = ""


async def _completed(client: TimestepClient, fake: FakeOpenAI, request_id: str = "") -> runs_pb2.Run:
    fake.script(text("Hello!"))
    run = await client.create_run("assistant", ORIGINAL_INPUT, request_id=request_id, wait=True, timeout=WAIT)
    assert run.status == RunStatus.RUN_STATUS_COMPLETED, run
    return run


async def _interrupted(client: TimestepClient, fake: FakeOpenAI) -> runs_pb2.Run:
    fake.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run("assistant", "Email Bob that I'm running late.", wait=True, timeout=WAIT)
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED, run
    assert len(run.interruptions) == 1, run
    return run


async def _decide(client: TimestepClient, run: runs_pb2.Run, approve: bool) -> runs_pb2.Interruption:
    decide = client.approve if approve else client.reject
    decided: runs_pb2.Interruption = await asyncio.wait_for(decide(run.id, run.interruptions[0].id), WAIT)
    return decided


async def prepare(setup: Setup, client: TimestepClient, fake: FakeOpenAI) -> World:
    """Bring the service into `setup`'s state through its public API."""
    if setup is Setup.NONE:
        return World()
    if setup is Setup.COMPLETED:
        request_id = unique("req")
        run = await _completed(client, fake, request_id)
        return World(run_id=run.id, request_id=request_id)
    if setup is Setup.FAILED:
        fake.script(error(400, "The model rejected the request."))
        run = await client.create_run("assistant", ORIGINAL_INPUT, wait=True, timeout=WAIT)
        assert run.status == RunStatus.RUN_STATUS_FAILED, run
        return World(run_id=run.id)
    if setup is Setup.TWO_RUNS:
        await _completed(client, fake)
        run = await _completed(client, fake)
        page = await client.list_runs(agent="assistant", page_size=1)
        assert page.next_page_token, "two assistant runs exist, so page 1 of size 1 has a next page"
        return World(run_id=run.id, page_token=page.next_page_token)
    run = await _interrupted(client, fake)
    world = World(run_id=run.id, interruption_id=run.interruptions[0].id)
    if setup is Setup.INTERRUPTED:
        state = await asyncio.wait_for(client.get_state(run.id), WAIT)
        return replace(world, state_json=state.state_json)
    if setup is Setup.TWO_INTERRUPTED:
        other = await _interrupted(client, fake)
        return replace(world, other_interruption_id=other.interruptions[0].id)
    if setup in (Setup.APPROVED, Setup.REJECTED):
        await _decide(client, run, approve=setup is Setup.APPROVED)
        return world
    assert setup is Setup.CANCELLED
    cancelled = await asyncio.wait_for(client.cancel(run.id, "Changed my mind."), WAIT)
    assert cancelled.status == RunStatus.RUN_STATUS_CANCELLED, cancelled
    return world


def empty_run_state() -> str:
    """A genuine Python RunState that never ran, so it has no pending approvals."""
    return RunState(RunContextWrapper(context=None), "hi", assistant).to_string()


# ----- the cases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    # The failing request, built from the prepared world; the RPC is named by its type.
    request: Callable[[World], Message]
    code: grpc.StatusCode
    # ErrorInfo.reason.
    reason: str
    # Phrases the message must contain: what was wrong and what to do.
    says: tuple[str, ...]
    # BadRequest field violation (INVALID_ARGUMENT only).
    field: str = ""
    setup: Setup = Setup.NONE


def create(**fields: Any) -> Callable[[World], Message]:
    defaults: dict[str, Any] = {"agent": "assistant", "input": ORIGINAL_INPUT}
    return lambda w: runs_pb2.CreateRunRequest(**{**defaults, **fields})


def import_state(state_json: str, agent: str = "assistant", **fields: Any) -> Callable[[World], Message]:
    return lambda w: runs_pb2.ImportRunStateRequest(agent=agent, state_json=state_json, **fields)


def reuse_request_id(**changes: Any) -> Callable[[World], Message]:
    """CreateRun with the COMPLETED run's request_id and its arguments, except `changes`."""
    return lambda w: runs_pb2.CreateRunRequest(
        **{"agent": "assistant", "input": ORIGINAL_INPUT, "request_id": w.request_id, **changes}
    )


def invalid(
    name: str,
    request: Callable[[World], Message],
    field: str,
    *says: str,
    reason: str = "INVALID_ARGUMENT",
    setup: Setup = Setup.NONE,
) -> Case:
    return Case(name, request, INVALID_ARGUMENT, reason, says, field, setup)


NOT_FOUND_CASES = [
    Case(
        "GetRun-unknown-run",
        lambda w: runs_pb2.GetRunRequest(run_id=MISSING_RUN),
        NOT_FOUND,
        "RUN_NOT_FOUND",
        (f"No run has id {MISSING_RUN!r}", "List runs with RunService.ListRuns"),
    ),
    Case(
        "ResumeRun-unknown-run",
        lambda w: runs_pb2.ResumeRunRequest(run_id=MISSING_RUN, wait=True),
        NOT_FOUND,
        "RUN_NOT_FOUND",
        (MISSING_RUN, "ListRuns"),
    ),
    Case(
        "CancelRun-unknown-run",
        lambda w: runs_pb2.CancelRunRequest(run_id=MISSING_RUN),
        NOT_FOUND,
        "RUN_NOT_FOUND",
        (MISSING_RUN, "ListRuns"),
    ),
    Case(
        "GetRunState-unknown-run",
        lambda w: runs_pb2.GetRunStateRequest(run_id=MISSING_RUN),
        NOT_FOUND,
        "RUN_NOT_FOUND",
        (MISSING_RUN, "ListRuns"),
    ),
    Case(
        "StreamRunEvents-unknown-run",
        lambda w: runs_pb2.StreamRunEventsRequest(run_id=MISSING_RUN),
        NOT_FOUND,
        "RUN_NOT_FOUND",
        (MISSING_RUN, "ListRuns"),
    ),
    Case(
        "ListInterruptions-unknown-run",
        lambda w: runs_pb2.ListInterruptionsRequest(run_id=MISSING_RUN),
        NOT_FOUND,
        "RUN_NOT_FOUND",
        (MISSING_RUN, "ListRuns"),
    ),
    Case(
        "ApproveInterruption-unknown-run",
        lambda w: runs_pb2.ApproveInterruptionRequest(
            run_id=MISSING_RUN, interruption_id=MISSING_INTERRUPTION
        ),
        NOT_FOUND,
        "RUN_NOT_FOUND",
        (MISSING_RUN, "ListRuns"),
    ),
    Case(
        "RejectInterruption-unknown-run",
        lambda w: runs_pb2.RejectInterruptionRequest(
            run_id=MISSING_RUN, interruption_id=MISSING_INTERRUPTION
        ),
        NOT_FOUND,
        "RUN_NOT_FOUND",
        (MISSING_RUN, "ListRuns"),
    ),
    Case(
        "ApproveInterruption-unknown-interruption",
        lambda w: runs_pb2.ApproveInterruptionRequest(run_id=w.run_id, interruption_id=MISSING_INTERRUPTION),
        NOT_FOUND,
        "INTERRUPTION_NOT_FOUND",
        (f"has no interruption {MISSING_INTERRUPTION!r}", "List them with RunService.ListInterruptions"),
        setup=Setup.INTERRUPTED,
    ),
    Case(
        "RejectInterruption-unknown-interruption",
        lambda w: runs_pb2.RejectInterruptionRequest(run_id=w.run_id, interruption_id=MISSING_INTERRUPTION),
        NOT_FOUND,
        "INTERRUPTION_NOT_FOUND",
        (MISSING_INTERRUPTION, "ListInterruptions"),
        setup=Setup.INTERRUPTED,
    ),
    Case(
        "ApproveInterruption-interruption-of-another-run",
        lambda w: runs_pb2.ApproveInterruptionRequest(
            run_id=w.run_id, interruption_id=w.other_interruption_id
        ),
        NOT_FOUND,
        "INTERRUPTION_NOT_FOUND",
        ("has no interruption", "ListInterruptions"),
        setup=Setup.TWO_INTERRUPTED,
    ),
    Case(
        "CreateRun-unknown-agent",
        create(agent="nobody"),
        NOT_FOUND,
        "AGENT_NOT_FOUND",
        ("No agent is named 'nobody'", "Registered agents: assistant, billing"),
    ),
    Case(
        "GetAgent-unknown-agent",
        lambda w: agents_pb2.GetAgentRequest(name="nobody"),
        NOT_FOUND,
        "AGENT_NOT_FOUND",
        ("No agent is named 'nobody'", "Registered agents: assistant, billing"),
    ),
    Case(
        "ImportRunState-unknown-agent",
        lambda w: runs_pb2.ImportRunStateRequest(agent="nobody", state_json=w.state_json),
        NOT_FOUND,
        "AGENT_NOT_FOUND",
        ("No agent is named 'nobody'", "Registered agents: assistant, billing"),
        setup=Setup.INTERRUPTED,
    ),
]

INVALID_ARGUMENT_CASES = [
    # CreateRun
    invalid(
        "CreateRun-empty-agent", create(agent=""), "agent", "agent is required", "AgentService.ListAgents"
    ),
    invalid(
        "CreateRun-empty-input", create(input=""), "input", "The run has no input", "set input (plain text)"
    ),
    invalid(
        "CreateRun-whitespace-input", create(input=" \n\t "), "input", "The run has no input", "set input"
    ),
    invalid(
        "CreateRun-input-and-input-items",
        create(input_items_json='[{"role": "user", "content": "hi"}]'),
        "input_items_json",
        "Set either input or input_items_json, not both",
    ),
    invalid(
        "CreateRun-too-many-input-items",
        create(input="", input_items_json=json.dumps([{"role": "user", "content": "hi"}] * 1001)),
        "input_items_json",
        "input_items_json has 1001 items; at most 1000 are allowed",
        "Keep earlier turns in a session",
        reason="TOO_MANY_INPUT_ITEMS",
    ),
    invalid(
        "CreateRun-input-items-not-json",
        create(input="", input_items_json="[{role: user}]"),
        "input_items_json",
        "input_items_json is not valid JSON",
        "Pass a JSON array of input items",
    ),
    invalid(
        "CreateRun-input-items-object-not-array",
        create(input="", input_items_json='{"role": "user", "content": "hi"}'),
        "input_items_json",
        ITEMS_SHAPE,
        '[{"role": "user", "content": "Hello"}]',
    ),
    invalid(
        "CreateRun-input-items-array-of-strings",
        create(input="", input_items_json='["hi"]'),
        "input_items_json",
        ITEMS_SHAPE,
    ),
    invalid(
        "CreateRun-input-items-empty-array",
        create(input="", input_items_json="[]"),
        "input_items_json",
        ITEMS_SHAPE,
    ),
    invalid(
        "CreateRun-input-items-NaN",
        create(input="", input_items_json='[{"role": "user", "content": "hi", "x": NaN}]'),
        "input_items_json",
        "input_items_json is not valid JSON",
        "NaN",
    ),
    invalid(
        "CreateRun-input-items-nested-too-deep",
        create(input="", input_items_json="[" * 5000 + "]" * 5000),
        "input_items_json",
        "input_items_json is not valid JSON",
    ),
    invalid(
        "CreateRun-session-id-with-a-slash",
        create(session_id="acme/s1"),
        "session_id",
        "session_id 'acme/s1' is not a valid id",
        "use only letters, digits, '.', '_', ':' and '-'",
    ),
    invalid(
        "CreateRun-request-id-with-a-space",
        create(request_id="order 42"),
        "request_id",
        "request_id 'order 42' is not a valid id",
    ),
    invalid(
        "ListRuns-session-id-with-a-slash",
        lambda w: runs_pb2.ListRunsRequest(session_id="acme/s1"),
        "session_id",
        "session_id 'acme/s1' is not a valid id",
    ),
    invalid(
        "ImportRunState-session-id-with-a-slash",
        lambda w: runs_pb2.ImportRunStateRequest(
            agent="assistant", state_json=w.state_json, session_id="acme/s1"
        ),
        "session_id",
        "session_id 'acme/s1' is not a valid id",
        setup=Setup.INTERRUPTED,
    ),
    invalid(
        "CreateRun-metadata-too-many-entries",
        create(metadata=TOO_MANY_METADATA),
        "metadata",
        "metadata has 65 entries",
        "at most 64",
        reason="FIELD_TOO_LONG",
    ),
    invalid(
        "CreateRun-metadata-empty-key",
        create(metadata={"": "value"}),
        "metadata",
        "metadata keys must be 1 to 128 characters",
    ),
    invalid(
        "CreateRun-request-id-too-long",
        create(request_id="r" * 201),
        "request_id",
        "request_id is longer than 200 characters",
        reason="FIELD_TOO_LONG",
    ),
    # ListRuns / ListInterruptions
    invalid(
        "ListRuns-unknown-status",
        lambda w: runs_pb2.ListRunsRequest(status=cast("runs_pb2.RunStatus", 99)),
        "status",
        "status 99 is not a RunStatus",
        "use one of QUEUED, RUNNING, INTERRUPTED, COMPLETED, FAILED, CANCELLED",
    ),
    invalid(
        "ListRuns-negative-page-size",
        lambda w: runs_pb2.ListRunsRequest(page_size=-1),
        "page_size",
        "page_size must not be negative",
        "pass 1 to 500, or 0 for 50",
    ),
    invalid(
        "ListRuns-forged-page-token",
        lambda w: runs_pb2.ListRunsRequest(page_token="not-a-token"),
        "page_token",
        "page_token is not a token this service issued",
        "start again with an empty page_token",
    ),
    invalid(
        "ListRuns-page-token-of-other-filters",
        lambda w: runs_pb2.ListRunsRequest(agent="billing", page_size=1, page_token=w.page_token),
        "page_token",
        "for these filters",
        "start again with an empty page_token",
        setup=Setup.TWO_RUNS,
    ),
    invalid(
        "ListInterruptions-negative-page-size",
        lambda w: runs_pb2.ListInterruptionsRequest(page_size=-5),
        "page_size",
        "page_size must not be negative",
        "pass 1 to 500",
    ),
    invalid(
        "ListInterruptions-forged-page-token",
        lambda w: runs_pb2.ListInterruptionsRequest(page_token="bm90IGEgdG9rZW4="),
        "page_token",
        "start again with an empty page_token",
    ),
    invalid(
        "ListInterruptions-ListRuns-page-token",
        lambda w: runs_pb2.ListInterruptionsRequest(page_token=w.page_token),
        "page_token",
        "start again with an empty page_token",
        setup=Setup.TWO_RUNS,
    ),
    invalid(
        "ListInterruptions-page-token-with-run-id",
        lambda w: runs_pb2.ListInterruptionsRequest(run_id=w.run_id, page_token="x"),
        "page_token",
        "page_token is not a token this service issued",
        setup=Setup.INTERRUPTED,
    ),
    # StreamRunEvents
    invalid(
        "StreamRunEvents-negative-after-sequence",
        lambda w: runs_pb2.StreamRunEventsRequest(run_id=w.run_id, after_sequence=-1),
        "after_sequence",
        "after_sequence must be 0 (whole history) or the last sequence you received",
        setup=Setup.COMPLETED,
    ),
    # Empty and malformed ids
    invalid("GetRun-empty-run-id", lambda w: runs_pb2.GetRunRequest(), "run_id", REQUIRED_RUN_ID),
    invalid("GetRun-blank-run-id", lambda w: runs_pb2.GetRunRequest(run_id="  "), "run_id", REQUIRED_RUN_ID),
    invalid(
        "GetRun-run-id-too-long",
        lambda w: runs_pb2.GetRunRequest(run_id="r" * 201),
        "run_id",
        "run_id is longer than 200 characters",
        reason="FIELD_TOO_LONG",
    ),
    invalid("ResumeRun-empty-run-id", lambda w: runs_pb2.ResumeRunRequest(), "run_id", REQUIRED_RUN_ID),
    invalid("CancelRun-empty-run-id", lambda w: runs_pb2.CancelRunRequest(), "run_id", REQUIRED_RUN_ID),
    invalid("GetRunState-empty-run-id", lambda w: runs_pb2.GetRunStateRequest(), "run_id", REQUIRED_RUN_ID),
    invalid(
        "StreamRunEvents-empty-run-id", lambda w: runs_pb2.StreamRunEventsRequest(), "run_id", REQUIRED_RUN_ID
    ),
    invalid(
        "ApproveInterruption-empty-run-id",
        lambda w: runs_pb2.ApproveInterruptionRequest(interruption_id=w.interruption_id),
        "run_id",
        REQUIRED_RUN_ID,
        setup=Setup.INTERRUPTED,
    ),
    invalid(
        "RejectInterruption-empty-run-id",
        lambda w: runs_pb2.RejectInterruptionRequest(interruption_id=w.interruption_id),
        "run_id",
        REQUIRED_RUN_ID,
        setup=Setup.INTERRUPTED,
    ),
    invalid(
        "ApproveInterruption-empty-interruption-id",
        lambda w: runs_pb2.ApproveInterruptionRequest(run_id=w.run_id),
        "interruption_id",
        "interruption_id is required",
        "pass an id from Run.interruptions or ListInterruptions",
        setup=Setup.INTERRUPTED,
    ),
    invalid(
        "GetAgent-empty-name",
        lambda w: agents_pb2.GetAgentRequest(),
        "name",
        "name is required",
        "pass an agent name from ListAgents",
    ),
    # ImportRunState
    invalid(
        "ImportRunState-empty-agent",
        lambda w: runs_pb2.ImportRunStateRequest(state_json=w.state_json),
        "agent",
        "agent is required",
        "name the registered agent the state belongs to",
        setup=Setup.INTERRUPTED,
    ),
    invalid(
        "ImportRunState-empty-state",
        import_state(" "),
        "state_json",
        "state_json is required",
        RUN_STATE_HINT,
    ),
    invalid(
        "ImportRunState-not-json",
        import_state("RunState<assistant>"),
        "state_json",
        "state_json is not valid JSON",
        RUN_STATE_HINT,
    ),
    invalid(
        "ImportRunState-json-without-schema-version",
        import_state(json.dumps({"current_turn": 1, "original_input": "hi"})),
        "state_json",
        'it has no "$schemaVersion"',
        RUN_STATE_HINT,
    ),
    invalid(
        "ImportRunState-json-array",
        import_state("[]"),
        "state_json",
        "not an Agents SDK RunState",
    ),
    invalid(
        "ImportRunState-unknown-writer",
        import_state('{"$schemaVersion": "1.0"}'),
        "state_json",
        "neither the Python nor the TypeScript RunState keys",
    ),
    invalid(
        "ImportRunState-typescript-schema-version",
        import_state('{"$schemaVersion": "1.0", "currentTurn": 1}'),
        "state_json",
        "written with typescript schema 1.0",
        "reads TypeScript (@openai/agents 0.20.0, schema 1.22) only",
        reason="UNSUPPORTED_STATE",
    ),
    invalid(
        "ImportRunState-not-loadable",
        import_state('{"$schemaVersion": "1.0", "current_turn": 0}'),
        "state_json",
        "could not load this RunState for agent 'assistant'",
        LOAD_HINT,
        reason="STATE_NOT_LOADABLE",
    ),
    invalid(
        "ImportRunState-state-of-another-agent",
        lambda w: runs_pb2.ImportRunStateRequest(agent="billing", state_json=w.state_json),
        "state_json",
        "could not load this RunState for agent 'billing'",
        LOAD_HINT,
        reason="STATE_NOT_LOADABLE",
        setup=Setup.INTERRUPTED,
    ),
    invalid(
        "ImportRunState-no-interruptions",
        lambda w: runs_pb2.ImportRunStateRequest(agent="assistant", state_json=empty_run_state()),
        "state_json",
        "has no tool calls awaiting approval",
        "import the state of a run that paused on an interruption",
        reason="STATE_NOT_INTERRUPTED",
    ),
    invalid(
        "ImportRunState-metadata-too-many-entries",
        lambda w: runs_pb2.ImportRunStateRequest(
            agent="assistant", state_json=w.state_json, metadata=TOO_MANY_METADATA
        ),
        "metadata",
        "metadata has 65 entries",
        "at most 64",
        reason="FIELD_TOO_LONG",
        setup=Setup.INTERRUPTED,
    ),
    invalid(
        "ImportRunState-session-id-too-long",
        lambda w: runs_pb2.ImportRunStateRequest(
            agent="assistant", state_json=w.state_json, session_id="s" * 201
        ),
        "session_id",
        "session_id is longer than 200 characters",
        reason="FIELD_TOO_LONG",
        setup=Setup.INTERRUPTED,
    ),
    invalid(
        "ImportRunState-state-too-large",
        import_state(" " * (MAX_STATE_BYTES + 1) + "{}"),
        "state_json",
        f"state_json is {MAX_STATE_BYTES + 3} bytes; at most {MAX_STATE_BYTES} are allowed",
        reason="STATE_TOO_LARGE",
    ),
]


def forged_token(after_id: str, scope: str = "pending", after: str = "2020-01-01T00:00:00+00:00") -> str:
    """A page token of the service's shape with contents of our choosing."""
    raw = json.dumps({"s": scope, "t": after, "i": after_id})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def usage(
    start_time: Timestamp | None = None, end_time: Timestamp | None = None
) -> Callable[[World], Message]:
    return lambda w: usage_pb2.GetUsageRequest(start_time=start_time, end_time=end_time)


def too_long(
    name: str, request: Callable[[World], Message], field: str, *says: str, setup: Setup = Setup.NONE
) -> Case:
    return invalid(name, request, field, *says, reason=FIELD_TOO_LONG, setup=setup)


# Bad values the service once let through to the database or the client (UNKNOWN, or a run
# whose GetRun no longer fits a client's 4 MiB receive limit).
BOUNDARY_CASES = [
    invalid(
        "ListInterruptions-forged-page-token-with-NUL",
        lambda w: runs_pb2.ListInterruptionsRequest(page_token=forged_token("int_\x00")),
        "page_token",
        "page_token is not a token this service issued",
    ),
    invalid(
        "ListInterruptions-forged-page-token-time-overflows",
        lambda w: runs_pb2.ListInterruptionsRequest(
            page_token=forged_token("x", after="0001-01-01T00:00:00+14:00")
        ),
        "page_token",
        "page_token is not a token this service issued",
    ),
    invalid(
        "ListInterruptions-run-id-negative-page-size",
        lambda w: runs_pb2.ListInterruptionsRequest(run_id=w.run_id, page_size=-1),
        "page_size",
        "page_size must not be negative",
        setup=Setup.INTERRUPTED,
    ),
    invalid(
        "GetUsage-start-time-seconds-out-of-range",
        usage(start_time=Timestamp(seconds=10**12)),
        "start_time",
        "start_time (seconds=1000000000000, nanos=0) is not a valid Timestamp",
        "years 1 to 9999",
        reason="TIMESTAMP_OUT_OF_RANGE",
    ),
    invalid(
        "GetUsage-end-time-before-year-1",
        usage(end_time=Timestamp(seconds=-(10**12))),
        "end_time",
        "is not a valid Timestamp",
        reason="TIMESTAMP_OUT_OF_RANGE",
    ),
    invalid(
        "GetUsage-end-time-nanos-out-of-range",
        usage(end_time=Timestamp(seconds=0, nanos=10**9)),
        "end_time",
        "nanos from 0 to 999999999",
        reason="TIMESTAMP_OUT_OF_RANGE",
    ),
    invalid(
        "GetUsage-start-time-negative-nanos",
        usage(start_time=Timestamp(seconds=0, nanos=-1)),
        "start_time",
        "nanos=-1",
        reason="TIMESTAMP_OUT_OF_RANGE",
    ),
    too_long(
        "CreateRun-input-too-long",
        create(input="x" * (MAX_INPUT_BYTES + 1)),
        "input",
        f"input is {MAX_INPUT_BYTES + 1} bytes; at most {MAX_INPUT_BYTES} are allowed",
        "Keep earlier turns in a session",
    ),
    too_long(
        "CreateRun-input-too-long-in-UTF-8",
        create(input="é" * (MAX_INPUT_BYTES // 2 + 1)),
        "input",
        f"input is {MAX_INPUT_BYTES + 2} bytes",
    ),
    too_long(
        "CreateRun-input-items-too-long",
        create(input="", input_items_json=json.dumps([{"role": "user", "content": "x" * MAX_INPUT_BYTES}])),
        "input_items_json",
        "bytes; at most",
    ),
    too_long(
        "CreateRun-agent-too-long", create(agent="a" * 201), "agent", "agent is longer than 200 characters"
    ),
    too_long(
        "CreateRun-model-too-long", create(model="m" * 201), "model", "model is longer than 200 characters"
    ),
    too_long(
        "CreateRun-metadata-value-too-long",
        create(metadata={"k": "v" * 2049}),
        "metadata",
        "metadata['k'] is longer than 2048 characters",
    ),
    too_long(
        "CancelRun-reason-too-long",
        lambda w: runs_pb2.CancelRunRequest(run_id=w.run_id, reason="r" * (MAX_TEXT_BYTES + 1)),
        "reason",
        f"reason is {MAX_TEXT_BYTES + 1} bytes; at most {MAX_TEXT_BYTES} are allowed",
        setup=Setup.INTERRUPTED,
    ),
    too_long(
        "RejectInterruption-message-too-long",
        lambda w: runs_pb2.RejectInterruptionRequest(
            run_id=w.run_id, interruption_id=w.interruption_id, message="m" * (MAX_TEXT_BYTES + 1)
        ),
        "message",
        f"message is {MAX_TEXT_BYTES + 1} bytes",
        setup=Setup.INTERRUPTED,
    ),
    too_long(
        "ListRuns-agent-filter-too-long",
        lambda w: runs_pb2.ListRunsRequest(agent="a" * 201),
        "agent",
        "agent is longer than 200 characters",
    ),
    too_long(
        "ListRuns-page-token-too-long",
        lambda w: runs_pb2.ListRunsRequest(page_token="A" * 513),
        "page_token",
        "page_token is longer than 512 characters",
        "Pass the next_page_token of the previous page unchanged",
    ),
    too_long(
        "GetUsage-model-filter-too-long",
        lambda w: usage_pb2.GetUsageRequest(model="m" * 201),
        "model",
        "model is longer than 200 characters",
    ),
    too_long(
        "GetAgent-name-too-long",
        lambda w: agents_pb2.GetAgentRequest(name="n" * 201),
        "name",
        "name is longer than 200 characters",
    ),
    too_long(
        "CreateSchedule-input-too-long",
        lambda w: schedules_pb2.CreateScheduleRequest(
            cron="0 9 * * 1-5", agent="assistant", input="x" * (MAX_SCHEDULE_INPUT_BYTES + 1)
        ),
        "input",
        f"input is {MAX_SCHEDULE_INPUT_BYTES + 1} bytes; at most {MAX_SCHEDULE_INPUT_BYTES} are allowed",
    ),
    too_long(
        "GetSchedule-schedule-id-too-long",
        lambda w: schedules_pb2.GetScheduleRequest(schedule_id="s" * 201),
        "schedule_id",
        "schedule_id is longer than 200 characters",
    ),
]

FAILED_PRECONDITION_CASES = [
    Case(
        "ResumeRun-undecided-interruptions",
        lambda w: runs_pb2.ResumeRunRequest(run_id=w.run_id, wait=True),
        FAILED_PRECONDITION,
        "INTERRUPTIONS_PENDING",
        ("still has undecided interruptions", "Approve or reject each", "then resume"),
        setup=Setup.INTERRUPTED,
    ),
    Case(
        "ResumeRun-completed-run",
        lambda w: runs_pb2.ResumeRunRequest(run_id=w.run_id),
        FAILED_PRECONDITION,
        "RUN_NOT_RESUMABLE",
        ("is COMPLETED", ONLY_INTERRUPTED_CAN_RESUME),
        setup=Setup.COMPLETED,
    ),
    Case(
        "ResumeRun-failed-run",
        lambda w: runs_pb2.ResumeRunRequest(run_id=w.run_id),
        FAILED_PRECONDITION,
        "RUN_NOT_RESUMABLE",
        ("is FAILED", ONLY_INTERRUPTED_CAN_RESUME),
        setup=Setup.FAILED,
    ),
    Case(
        "ResumeRun-cancelled-run",
        lambda w: runs_pb2.ResumeRunRequest(run_id=w.run_id),
        FAILED_PRECONDITION,
        "RUN_NOT_RESUMABLE",
        ("is CANCELLED", ONLY_INTERRUPTED_CAN_RESUME),
        setup=Setup.CANCELLED,
    ),
    Case(
        "ApproveInterruption-already-rejected",
        lambda w: runs_pb2.ApproveInterruptionRequest(run_id=w.run_id, interruption_id=w.interruption_id),
        FAILED_PRECONDITION,
        "INTERRUPTION_ALREADY_DECIDED",
        ("was already rejected", DECISION_FINAL),
        setup=Setup.REJECTED,
    ),
    Case(
        "RejectInterruption-already-approved",
        lambda w: runs_pb2.RejectInterruptionRequest(run_id=w.run_id, interruption_id=w.interruption_id),
        FAILED_PRECONDITION,
        "INTERRUPTION_ALREADY_DECIDED",
        ("was already approved", DECISION_FINAL),
        setup=Setup.APPROVED,
    ),
    Case(
        "ApproveInterruption-again-with-other-always",
        lambda w: runs_pb2.ApproveInterruptionRequest(
            run_id=w.run_id, interruption_id=w.interruption_id, always=True
        ),
        FAILED_PRECONDITION,
        "INTERRUPTION_ALREADY_DECIDED",
        ("was already approved with always=false", DECISION_FINAL, "Repeating the recorded decision exactly"),
        setup=Setup.APPROVED,
    ),
    Case(
        "RejectInterruption-again-with-other-message",
        lambda w: runs_pb2.RejectInterruptionRequest(
            run_id=w.run_id, interruption_id=w.interruption_id, message="Not now."
        ),
        FAILED_PRECONDITION,
        "INTERRUPTION_ALREADY_DECIDED",
        ("was already rejected with always=false", DECISION_FINAL),
        setup=Setup.REJECTED,
    ),
    Case(
        "RejectInterruption-again-with-other-always",
        lambda w: runs_pb2.RejectInterruptionRequest(
            run_id=w.run_id, interruption_id=w.interruption_id, always=True
        ),
        FAILED_PRECONDITION,
        "INTERRUPTION_ALREADY_DECIDED",
        ("was already rejected", DECISION_FINAL),
        setup=Setup.REJECTED,
    ),
    Case(
        "ApproveInterruption-cancelled-run",
        lambda w: runs_pb2.ApproveInterruptionRequest(run_id=w.run_id, interruption_id=w.interruption_id),
        FAILED_PRECONDITION,
        "RUN_NOT_INTERRUPTED",
        ("is CANCELLED", DECIDE_ONLY_WHILE_INTERRUPTED),
        setup=Setup.CANCELLED,
    ),
    Case(
        "RejectInterruption-cancelled-run",
        lambda w: runs_pb2.RejectInterruptionRequest(run_id=w.run_id, interruption_id=w.interruption_id),
        FAILED_PRECONDITION,
        "RUN_NOT_INTERRUPTED",
        ("is CANCELLED", DECIDE_ONLY_WHILE_INTERRUPTED),
        setup=Setup.CANCELLED,
    ),
    Case(
        "CancelRun-completed-run",
        lambda w: runs_pb2.CancelRunRequest(run_id=w.run_id),
        FAILED_PRECONDITION,
        "RUN_FINISHED",
        ("is already COMPLETED", ONLY_UNFINISHED_CAN_CANCEL),
        setup=Setup.COMPLETED,
    ),
    Case(
        "CancelRun-failed-run",
        lambda w: runs_pb2.CancelRunRequest(run_id=w.run_id),
        FAILED_PRECONDITION,
        "RUN_FINISHED",
        ("is already FAILED", ONLY_UNFINISHED_CAN_CANCEL),
        setup=Setup.FAILED,
    ),
    Case(
        "CancelRun-cancelled-run",
        lambda w: runs_pb2.CancelRunRequest(run_id=w.run_id, reason="Again."),
        FAILED_PRECONDITION,
        "RUN_FINISHED",
        ("is already CANCELLED", ONLY_UNFINISHED_CAN_CANCEL),
        setup=Setup.CANCELLED,
    ),
    Case(
        "GetRunState-completed-run",
        lambda w: runs_pb2.GetRunStateRequest(run_id=w.run_id),
        FAILED_PRECONDITION,
        "RUN_NOT_INTERRUPTED",
        ("is COMPLETED", NO_RUN_STATE),
        setup=Setup.COMPLETED,
    ),
    Case(
        "GetRunState-cancelled-run",
        lambda w: runs_pb2.GetRunStateRequest(run_id=w.run_id),
        FAILED_PRECONDITION,
        "RUN_NOT_INTERRUPTED",
        ("is CANCELLED", NO_RUN_STATE),
        setup=Setup.CANCELLED,
    ),
]

# What a repeat of the COMPLETED run's CreateRun changes, keeping its request_id.
REQUEST_ID_REUSED_WITH: list[tuple[str, dict[str, Any]]] = [
    ("different-input", {"input": "Say goodbye."}),
    ("different-agent", {"agent": "billing"}),
    ("different-metadata", {"metadata": {"team": "ops"}}),
    ("different-session", {"session_id": "session-1"}),
    ("different-model", {"model": "gpt-4.1-mini"}),
]

ALREADY_EXISTS_CASES = [
    Case(
        f"CreateRun-request-id-reused-with-{what}",
        reuse_request_id(**changes),
        ALREADY_EXISTS,
        "REQUEST_ID_REUSED",
        ("was already used for run", "with different arguments", REQUEST_ID_REUSED),
        setup=Setup.COMPLETED,
    )
    for what, changes in REQUEST_ID_REUSED_WITH
]

CASES = [
    *NOT_FOUND_CASES,
    *INVALID_ARGUMENT_CASES,
    *BOUNDARY_CASES,
    *FAILED_PRECONDITION_CASES,
    *ALREADY_EXISTS_CASES,
]


# ----- the test -----------------------------------------------------------------------------


async def call_rpc(client: TimestepClient, request: Message) -> object:
    """Send `request` to the RPC named by its type (GetRunRequest → GetRun) and await the result."""
    method = type(request).__name__.removesuffix("Request")
    stubs = {
        runs_pb2.DESCRIPTOR.name: client.runs,
        agents_pb2.DESCRIPTOR.name: client.agents,
        usage_pb2.DESCRIPTOR.name: client.usage,
        schedules_pb2.DESCRIPTOR.name: client.schedules,
    }
    stub = stubs[request.DESCRIPTOR.file.name]
    call: Any = getattr(stub, method)(request, timeout=WAIT)
    if method == "StreamRunEvents":
        return [message async for message in call]
    return await call


def details_of(status: Any, kind: type[Message]) -> list[Any]:
    """The google.rpc details of one type in a google.rpc.Status."""
    found = []
    for detail in status.details:
        if detail.Is(kind.DESCRIPTOR):
            message = kind()
            detail.Unpack(message)
            found.append(message)
    return found


def test_cases_are_well_formed() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    for case in CASES:
        assert bool(case.field) == (case.code == INVALID_ARGUMENT), case.name
        assert case.says, case.name


@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in CASES])
async def test_rpc_error(
    case: Case, service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI, database_url: str
) -> None:
    """Over gRPC, then the same request over Connect (JSON over HTTP): the same code, message
    and details."""
    world = await prepare(case.setup, client, fake_openai)
    request = case.request(world)
    before = await db_state(database_url)
    requests_before = len(fake_openai.requests)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(call_rpc(client, request), WAIT)
    error = raised.value
    message: str = error.details()

    assert error.code() == case.code, f"expected {case.code.name}, got {error.code().name}: {message}"
    for phrase in case.says:
        assert phrase in message, f"{phrase!r} not in the message {message!r}"

    status = rpc_status.from_call(error)
    assert status is not None, "the error carries no google.rpc.Status (grpc-status-details-bin)"
    assert status.code == case.code.value[0]
    assert status.message == message
    infos = details_of(status, error_details_pb2.ErrorInfo)
    assert [(info.reason, info.domain) for info in infos] == [(case.reason, ERROR_DOMAIN)]
    bad_requests = details_of(status, error_details_pb2.BadRequest)
    if case.code == INVALID_ARGUMENT:
        assert len(bad_requests) == 1, status
        violations = [(v.field, v.description) for v in bad_requests[0].field_violations]
        assert violations == [(case.field, message)]
    else:
        assert bad_requests == [], "BadRequest is only for INVALID_ARGUMENT"
    preconditions = details_of(status, error_details_pb2.PreconditionFailure)
    if case.code == FAILED_PRECONDITION:
        assert len(preconditions) == 1, status
        failures = [(v.type, v.subject, v.description) for v in preconditions[0].violations]
        assert failures == [(case.reason, f"runs/{world.run_id}", message)]
    else:
        assert preconditions == [], "PreconditionFailure is only for FAILED_PRECONDITION"

    async with aiohttp.ClientSession() as session:
        over_http = await connect.call_message(session, f"http://127.0.0.1:{service.http_port}", request)
    assert over_http.code == connect.connect_code(case.code), over_http
    assert over_http.error is not None
    assert over_http.error["message"] == message
    assert over_http.details() == [
        (d.type_url.removeprefix(TYPE_URL_PREFIX), d.value) for d in status.details
    ]

    assert await db_state(database_url) == before, "a failed call changed the database"
    assert len(fake_openai.requests) == requests_before, "a failed call reached the model"


# ----- repeats that are not errors ----------------------------------------------------------


@pytest.mark.parametrize("approve", [True, False], ids=["approve", "reject"])
async def test_repeating_a_decision_is_harmless(
    approve: bool, client: TimestepClient, fake_openai: FakeOpenAI, database_url: str
) -> None:
    run = await _interrupted(client, fake_openai)
    first = await _decide(client, run, approve)
    expected = runs_pb2.INTERRUPTION_STATUS_APPROVED if approve else runs_pb2.INTERRUPTION_STATUS_REJECTED
    assert first.status == expected
    events = await collect_events(client, run.id)
    before = await db_state(database_url)

    again = await _decide(client, run, approve)

    assert again == first, "the repeated decision returns the interruption unchanged"
    assert await db_state(database_url) == before, "the repeated decision changed the database"
    assert await collect_events(client, run.id) == events, "the repeated decision added an event"
    decided = [e for e in events if e.WhichOneof("kind") == "interruption_decided"]
    assert [e.interruption_decided.id for e in decided] == [first.id]
    # And the run carries on normally.
    fake_openai.script(text("Sent." if approve else "OK, I did not send it."))
    resumed = await client.resume(run.id, wait=True, timeout=WAIT)
    assert resumed.status == RunStatus.RUN_STATUS_COMPLETED, resumed
    assert [i.status for i in resumed.interruptions] == [expected]


async def test_a_repeated_decision_that_differs_says_what_was_recorded(
    client: TimestepClient, fake_openai: FakeOpenAI, database_url: str
) -> None:
    run = await _interrupted(client, fake_openai)
    recorded = await client.reject(run.id, run.interruptions[0].id, "Not to Bob.", always=True)
    before = await db_state(database_url)

    error = await expect_rpc_error(
        client.reject(run.id, recorded.id, "Not to Bob!", always=True), FAILED_PRECONDITION
    )

    status = rpc_status.from_call(error)
    assert status is not None
    [info] = details_of(status, error_details_pb2.ErrorInfo)
    assert info.reason == "INTERRUPTION_ALREADY_DECIDED"
    assert dict(info.metadata) == {
        "status": "rejected",
        "always": "true",
        "message": "Not to Bob.",
        "message_truncated": "false",
    }
    assert "was already rejected with always=true and a message" in (error.details() or "")
    assert await db_state(database_url) == before
    assert (await client.get_run(run.id)).interruptions == [recorded]


async def test_an_imported_rejection_message_has_the_cap_of_reject_interruption(
    client: TimestepClient, fake_openai: FakeOpenAI, database_url: str
) -> None:
    run = await _interrupted(client, fake_openai)
    state = await RunState.from_string(assistant, (await client.get_state(run.id)).state_json)
    [approval] = state.get_interruptions()
    state.reject(approval, rejection_message="m" * (MAX_TEXT_BYTES + 1))
    before = await db_state(database_url)

    error = await expect_rpc_error(
        client.runs.ImportRunState(
            runs_pb2.ImportRunStateRequest(agent="assistant", state_json=state.to_string()), timeout=WAIT
        ),
        INVALID_ARGUMENT,
    )

    assert f"is {MAX_TEXT_BYTES + 1} bytes; at most {MAX_TEXT_BYTES} are allowed" in (error.details() or "")
    status = rpc_status.from_call(error)
    assert status is not None
    [info] = details_of(status, error_details_pb2.ErrorInfo)
    assert info.reason == FIELD_TOO_LONG
    assert await db_state(database_url) == before


async def test_reused_request_id_with_same_arguments_returns_the_same_run(
    client: TimestepClient, fake_openai: FakeOpenAI, database_url: str
) -> None:
    request_id = unique("req")
    run = await _completed(client, fake_openai, request_id)
    before = await db_state(database_url)

    again = await client.create_run(
        "assistant", ORIGINAL_INPUT, request_id=request_id, wait=True, timeout=WAIT
    )

    assert again == run
    assert await db_state(database_url) == before
    assert len(fake_openai.requests) == 1, "the repeat started no new model call"


def _raw_bytes(message: Message, valid: str, invalid: bytes) -> bytes:
    """`message` serialized, with the UTF-8 of `valid` replaced by bytes that are not UTF-8."""
    data = message.SerializeToString()
    assert valid.encode() in data
    return data.replace(valid.encode(), invalid)


@pytest.mark.parametrize(
    ("method", "streaming", "request_bytes"),
    [
        (
            "CreateRun",
            False,
            _raw_bytes(
                runs_pb2.CreateRunRequest(agent="assistant", input="hi", metadata={"k": "ok"}),
                "ok",
                b"\xff\xfe",
            ),
        ),
        (
            "ImportRunState",
            False,
            _raw_bytes(
                runs_pb2.ImportRunStateRequest(agent="assistant", state_json="{ok}"), "ok", b"\xc3\x28"
            ),
        ),
        (
            "StreamRunEvents",
            True,
            _raw_bytes(runs_pb2.StreamRunEventsRequest(run_id="run_ok"), "ok", b"\xed\xa0\x80"),
        ),
        ("GetRun", False, b"\x0a\x10run_"),  # truncated: a 16-byte field with 4 bytes
    ],
    ids=[
        "CreateRun-metadata-not-utf8",
        "ImportRunState-not-utf8",
        "StreamRunEvents-not-utf8",
        "GetRun-truncated",
    ],
)
async def test_a_request_that_cannot_be_parsed_is_invalid_argument_and_writes_nothing(
    method: str, streaming: bool, request_bytes: bytes, client: TimestepClient, database_url: str
) -> None:
    before = await db_state(database_url)
    path = f"/timestep.v1.RunService/{method}"
    raw: dict[str, Any] = {
        "request_serializer": lambda data: data,
        "response_deserializer": lambda data: data,
    }

    async def call() -> None:
        if streaming:
            async for _ in client.channel.unary_stream(path, **raw)(request_bytes, timeout=WAIT):
                pass
        else:
            await client.channel.unary_unary(path, **raw)(request_bytes, timeout=WAIT)

    error = await expect_rpc_error(call(), INVALID_ARGUMENT)

    assert "could not be read" in (error.details() or "")
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("MALFORMED_REQUEST", ERROR_DOMAIN)
    assert await db_state(database_url) == before
