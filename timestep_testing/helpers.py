"""Helpers for tests against a running service: following event streams with timeouts, reading
what the fake model was sent, and checking gRPC errors.

Nothing here sleeps: every wait is bounded by `asyncio.wait_for` and ends as soon as the awaited
thing happens.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Final

import asyncpg
import grpc
import pytest
from agents import OpenAIProvider, RunConfig
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from timestep.api.auth import ApiKeys, hash_key
from timestep_client import Interruption, InterruptionStatus, Run, RunEvent, RunStatus, TimestepClient
from timestep_client.v1 import runs_pb2, webhooks_pb2

from timestep_testing.fakes.openai_responses import JSON, FakeOpenAI, ModelTurn
from timestep_testing.fakes.openai_responses import Usage as FakeUsage

WAIT: Final = 10.0
"""Upper bound for any wait on the service or the fake; never used as a sleep."""

EMAIL_ARGS: Final = {"to": "bob@example.com", "subject": "Running late", "body": "See you at 10."}
EMAIL_SENT: Final = "Email to bob@example.com with subject 'Running late' sent."
"""What the example `send_email` tool returns for `EMAIL_ARGS`."""


def tenant_keys(*keys: str) -> ApiKeys:
    """API keys for `keys`, each of a tenant no other test uses."""
    return ApiKeys.parse([f"{unique('tenant')}:{hash_key(key)}" for key in keys])


def unique(prefix: str) -> str:
    """An id no other test (or earlier test run on the same database) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ----- gRPC errors ---------------------------------------------------------------------------


async def expect_rpc_error(call: Awaitable[object], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """Await `call`, assert it fails with `code`, and return the error for further checks."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error: grpc.aio.AioRpcError = caught.value
    assert error.code() == code, f"expected {code}, got {error.code()}: {error.details()}"
    return error


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The google.rpc.ErrorInfo an error of the service carries (its reason and metadata)."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no google.rpc.Status in {error}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError(f"no ErrorInfo in {error}")


def _details(error: grpc.aio.AioRpcError, kind: type[Any]) -> list[Any]:
    status = rpc_status.from_call(error)
    assert status is not None, f"no google.rpc.Status in {error}"
    found = []
    for detail in status.details:
        message = kind()
        if detail.Unpack(message):
            found.append(message)
    return found


def error_reason(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason of a failed call."""
    [info] = _details(error, error_details_pb2.ErrorInfo)
    return str(info.reason)


def violated_fields(error: grpc.aio.AioRpcError) -> list[str]:
    """The fields a BadRequest of a failed call names, in order."""
    return [v.field for bad in _details(error, error_details_pb2.BadRequest) for v in bad.field_violations]


async def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:  # noqa: ASYNC109
    """Wait until `condition()` holds, checking after every other task had its turn; for state
    another task of this event loop changes without signalling it (e.g. cleanup after a cancel)."""

    async def check() -> None:
        while not condition():  # noqa: ASYNC110 - no event exists for such state; bounded by `timeout`
            await asyncio.sleep(0.005)

    await asyncio.wait_for(check(), timeout)


DeliveryList = list[webhooks_pb2.WebhookDelivery]


async def deliveries_when(
    client: TimestepClient,
    webhook_id: str,
    condition: Callable[[DeliveryList], bool],
    timeout: float = WAIT,  # noqa: ASYNC109
) -> DeliveryList:
    """The webhook's deliveries (newest first) once `condition` holds for them: deliveries and
    attempts are recorded in the database as they happen, and nothing announces them."""

    async def poll() -> DeliveryList:
        # Nothing announces it, so it is polled (bounded by `timeout` below).
        while not condition(found := list((await client.list_webhook_deliveries(webhook_id)).deliveries)):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return found

    return await asyncio.wait_for(poll(), timeout)


async def settled_deliveries(
    client: TimestepClient,
    webhook_id: str,
    count: int,
    timeout: float = WAIT,  # noqa: ASYNC109
) -> DeliveryList:
    """The webhook's deliveries once there are `count` and none is pending any more."""
    return await deliveries_when(
        client,
        webhook_id,
        lambda found: (
            len(found) == count and all(d.status != webhooks_pb2.DELIVERY_STATUS_PENDING for d in found)
        ),
        timeout,
    )


# ----- events --------------------------------------------------------------------------------


class EventStream:
    """One StreamRunEvents call, read message by message with a timeout on every read.

    Use as an async context manager; leaving it cancels the call if it is still open.
    """

    def __init__(self, client: TimestepClient, run_id: str, after_sequence: int = 0) -> None:
        request = runs_pb2.StreamRunEventsRequest(run_id=run_id, after_sequence=after_sequence)
        self._call: Any = client.runs.StreamRunEvents(request)
        self.received: list[RunEvent] = []
        self.ended = False

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._call.cancel()

    async def next(self, timeout: float = WAIT) -> RunEvent | None:  # noqa: ASYNC109
        """The next event, or None once the server has ended the stream."""
        if self.ended:
            return None
        message = await self._read(timeout)
        if message is grpc.aio.EOF:
            self.ended = True
            assert await self._call.code() == grpc.StatusCode.OK
            return None
        event: RunEvent = message.event
        self.received.append(event)
        return event

    async def wait_for(self, predicate: Callable[[RunEvent], bool], timeout: float = WAIT) -> RunEvent:  # noqa: ASYNC109
        """Read until an event matches `predicate`; fail if the stream ends or time runs out first."""

        async def find() -> RunEvent:
            while (event := await self.next(timeout)) is not None:
                if predicate(event):
                    return event
            raise AssertionError(f"the stream ended without the awaited event; got {kinds(self.received)}")

        return await asyncio.wait_for(find(), timeout)

    async def rest(self, timeout: float = WAIT) -> list[RunEvent]:  # noqa: ASYNC109
        """Read until the server ends the stream; returns the events read by this call."""

        async def drain() -> list[RunEvent]:
            events = []
            while (event := await self.next(timeout)) is not None:
                events.append(event)
            return events

        return await asyncio.wait_for(drain(), timeout)

    async def _read(self, seconds: float) -> Any:
        return await asyncio.wait_for(self._call.read(), seconds)


async def collect_events(
    client: TimestepClient,
    run_id: str,
    after_sequence: int = 0,
    timeout: float = WAIT,  # noqa: ASYNC109
) -> list[RunEvent]:
    """Every event StreamRunEvents sends for `run_id` after `after_sequence`, until it ends."""
    async with EventStream(client, run_id, after_sequence) as stream:
        return await stream.rest(timeout)


def kinds(events: Iterable[RunEvent]) -> list[str]:
    return [event.WhichOneof("kind") for event in events]


def of_kind(events: Iterable[RunEvent], kind: str) -> list[Any]:
    """The payloads (e.g. `Handoff` messages) of the events of one kind, in order."""
    return [getattr(event, kind) for event in events if event.WhichOneof("kind") == kind]


def sequences(events: Iterable[RunEvent]) -> list[int]:
    """The sequences of the durable (stored) events, in the order received."""
    return [event.sequence for event in events if event.sequence > 0]


def is_kind(kind: str) -> Callable[[RunEvent], bool]:
    """A predicate for `EventStream.wait_for`: the event is of this kind (e.g. "text_delta")."""

    def matches(event: RunEvent) -> bool:
        return bool(event.WhichOneof("kind") == kind)

    return matches


STOP_STATUSES: Final = frozenset(
    {
        RunStatus.RUN_STATUS_COMPLETED,
        RunStatus.RUN_STATUS_INTERRUPTED,
        RunStatus.RUN_STATUS_FAILED,
        RunStatus.RUN_STATUS_CANCELLED,
    }
)


def is_stop_status(event: RunEvent) -> bool:
    """The event moved the run to a status after which its event stream ends."""
    return event.WhichOneof("kind") == "status_changed" and event.status_changed.status in STOP_STATUSES


def statuses(events: Iterable[RunEvent]) -> list[int]:
    return [event.status_changed.status for event in events if event.WhichOneof("kind") == "status_changed"]


# ----- runs ----------------------------------------------------------------------------------


def pending(run: Run) -> list[Interruption]:
    return [i for i in run.interruptions if i.status == InterruptionStatus.INTERRUPTION_STATUS_PENDING]


def expected_usage(*turns: ModelTurn) -> FakeUsage:
    """The usage the fake's usage rule gives for these turns, summed."""
    return FakeUsage(
        input_tokens=sum(turn.usage.input_tokens for turn in turns),
        output_tokens=sum(turn.usage.output_tokens for turn in turns),
    )


def assert_usage(run: Run, *turns: ModelTurn) -> None:
    """`run.usage` is what the fake reported for exactly these turns, one request each."""
    want = expected_usage(*turns)
    assert (run.usage.requests, run.usage.input_tokens, run.usage.output_tokens, run.usage.total_tokens) == (
        len(turns),
        want.input_tokens,
        want.output_tokens,
        want.total_tokens,
    )


# ----- the database --------------------------------------------------------------------------

DB_STATE_SQL: Final = """
SELECT
  (SELECT count(*) FROM runs) AS runs,
  (SELECT count(*) FROM run_events) AS run_events,
  (SELECT count(*) FROM interruptions) AS interruptions,
  (SELECT count(*) FROM run_state_snapshots) AS snapshots,
  (SELECT md5(coalesce(string_agg(
      concat_ws('|', id, status, segment_count, last_sequence, update_time, error_code, error_message),
      ',' ORDER BY id), '')) FROM runs) AS runs_checksum,
  (SELECT md5(coalesce(string_agg(
      concat_ws('|', id, status, always, message, decide_time),
      ',' ORDER BY id), '')) FROM interruptions) AS interruptions_checksum
"""


async def db_state(database_url: str) -> dict[str, Any]:
    """Row counts of the run tables and a checksum of what a failed call could have changed."""
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow(DB_STATE_SQL)
    finally:
        await connection.close()
    assert row is not None
    return dict(row)


# ----- what the model was sent ---------------------------------------------------------------


def function_call_outputs(request: JSON) -> dict[str, str]:
    """`call_id -> output` of every `function_call_output` item in a model request's input."""
    items = request.get("input")
    if not isinstance(items, list):
        return {}
    return {
        item["call_id"]: output_as_text(item["output"])
        for item in items
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    }


def output_as_text(output: Any) -> str:
    """A function_call_output's `output`: a string, or a list of content parts with text."""
    if isinstance(output, str):
        return output
    return "".join(part.get("text", "") for part in output if isinstance(part, dict))


def conversation(request: JSON) -> list[tuple[str, str]]:
    """`(role, text)` of every message in a model request's input, in order."""
    items = request.get("input")
    if isinstance(items, str):
        return [("user", items)]
    messages: list[tuple[str, str]] = []
    for item in items or []:
        if not isinstance(item, dict) or "role" not in item or item.get("type", "message") != "message":
            continue
        content = item.get("content")
        if isinstance(content, str):
            messages.append((item["role"], content))
        else:
            messages.append((item["role"], "".join(part.get("text", "") for part in content or [])))
    return messages


def in_process_run_config(fake: FakeOpenAI) -> RunConfig:
    """A RunConfig that sends the in-process Agents SDK's model calls to the fake."""
    provider = OpenAIProvider(api_key="sk-test-in-process", base_url=fake.base_url, use_responses=True)
    return RunConfig(model_provider=provider, tracing_disabled=True)


def arguments(interruption: Interruption) -> JSON:
    parsed: JSON = json.loads(interruption.arguments_json)
    return parsed
