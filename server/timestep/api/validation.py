"""Request validation: what every servicer checks before it calls the core, in one place.

`check_request` runs on every request before its servicer method (see `timestep.api.errors`):
each string field against its cap (the table below), each map against the metadata caps, each
timestamp against the range a Timestamp may hold. (Any text is fine: NUL and the rest are stored
as they are; see `timestep.store.content`.) The servicers then check
what depends on the method (required fields, input shape) with the helpers below. Every refusal
is INVALID_ARGUMENT naming the field, raised before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from timestep_client.v1 import runs_pb2

from timestep import ids
from timestep.domain import (
    MAX_APPROVAL_TIMEOUT,
    MIN_APPROVAL_TIMEOUT,
    ApprovalPolicy,
    MultitaskStrategy,
    NewRun,
)
from timestep.errors import InvalidArgumentError
from timestep.settings import (
    MAX_ID_LENGTH,
    MAX_METADATA_ENTRIES,
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_VALUE_LENGTH,
    MAX_PAGE_TOKEN_LENGTH,
    MAX_SCHEDULE_INPUT_BYTES,
    Limits,
)
from timestep.webhooks.destinations import MAX_URL_LENGTH

FIELD_TOO_LONG: Final = "FIELD_TOO_LONG"
TIMESTAMP_OUT_OF_RANGE: Final = "TIMESTAMP_OUT_OF_RANGE"
# What google.protobuf.Timestamp may hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
MIN_TIMESTAMP_SECONDS: Final = -62_135_596_800
MAX_TIMESTAMP_SECONDS: Final = 253_402_300_799
MAX_NANOS: Final = 999_999_999


# ----- field caps ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cap:
    """The most one string field may hold: `size(limits)` characters, or UTF-8 bytes."""

    size: Callable[[Limits], int]
    in_bytes: bool = False
    reason: str = FIELD_TOO_LONG
    hint: str = ""

    def check(self, field: str, value: str, limits: Limits) -> None:
        cap = self.size(limits)
        if self.in_bytes:
            # Only encode what could be over: a character is 1 to 4 bytes.
            size = len(value) if len(value) > cap or len(value) * 4 <= cap else len(value.encode())
            if size > cap:
                self._refuse(field, f"{field} is {size} bytes; at most {cap} are allowed.")
        elif len(value) > cap:
            self._refuse(field, f"{field} is longer than {cap} characters.")

    def _refuse(self, field: str, problem: str) -> None:
        raise InvalidArgumentError(f"{problem}{self.hint}", field=field, reason=self.reason)


_ID: Final = Cap(lambda _: MAX_ID_LENGTH)
_TEXT: Final = Cap(lambda limits: limits.max_text_bytes, in_bytes=True, hint=" Shorten it.")
_INPUT: Final = Cap(
    lambda limits: limits.max_input_bytes,
    in_bytes=True,
    hint=" Keep earlier turns in a session (session_id) instead of resending them.",
)

# Every string field of every request, by name (the unit tests check that none is missing).
CAPS: Final[dict[str, Cap]] = {
    **dict.fromkeys(
        ("run_id", "interruption_id", "schedule_id", "session_id", "request_id", "agent", "model", "name"),
        _ID,
    ),
    "cron": _ID,
    "timezone": _ID,
    "page_token": Cap(
        lambda _: MAX_PAGE_TOKEN_LENGTH,
        hint=" Pass the next_page_token of the previous page unchanged, or an empty one to start again.",
    ),
    "cursor": Cap(
        lambda _: MAX_PAGE_TOKEN_LENGTH,
        hint=" Pass the cursor of a message WatchRuns sent unchanged, or an empty one to start now.",
    ),
    "input": _INPUT,
    "input_items_json": _INPUT,
    "message": _TEXT,
    "reason": _TEXT,
    "state_json": Cap(lambda limits: limits.max_state_bytes, in_bytes=True, reason="STATE_TOO_LARGE"),
    **dict.fromkeys(("webhook_id", "description", "decided_by", "event_types"), _ID),
    **dict.fromkeys(("url", "webhook_url"), Cap(lambda _: MAX_URL_LENGTH)),
    "approval_expiry_message": _TEXT,
    # Edited tool arguments: as large as a run's input may be.
    "arguments_json": Cap(lambda limits: limits.max_input_bytes, in_bytes=True),
}
# Where a field name means something else in one message ("<message full name>.<field>").
CAP_OVERRIDES: Final[dict[str, Cap]] = {
    # A schedule's input is a prompt, and every ListSchedules answer carries each one whole.
    "timestep.v1.CreateScheduleRequest.input": Cap(lambda _: MAX_SCHEDULE_INPUT_BYTES, in_bytes=True),
}


def cap_of(field: FieldDescriptor) -> Cap:
    return CAP_OVERRIDES.get(field.full_name) or CAPS[field.name]


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


def is_timestamp(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.full_name == Timestamp.DESCRIPTOR.full_name


def uncapped_fields(descriptor: Descriptor) -> list[str]:
    """The string fields of a request type that `CAPS` has no rule for (there should be none)."""
    return [
        field.full_name
        for field in descriptor.fields
        if field.type == FieldDescriptor.TYPE_STRING
        and field.full_name not in CAP_OVERRIDES
        and field.name not in CAPS
    ]


def check_request(request: Message, limits: Limits) -> None:
    """The checks every request gets, whatever its method (see the module's docstring)."""
    for field, value in request.ListFields():
        if is_map(field):
            check_metadata(field.name, dict(value))
        elif field.type == FieldDescriptor.TYPE_STRING:
            for item in value if field.is_repeated else [value]:
                cap_of(field).check(field.name, item, limits)
        elif is_timestamp(field):
            check_timestamp(field.name, value)


def check_metadata(field: str, items: dict[str, str]) -> None:
    if len(items) > MAX_METADATA_ENTRIES:
        raise InvalidArgumentError(
            f"{field} has {len(items)} entries; at most {MAX_METADATA_ENTRIES} are allowed.",
            field=field,
            reason=FIELD_TOO_LONG,
        )
    for key, value in items.items():
        if not key or len(key) > MAX_METADATA_KEY_LENGTH:
            raise InvalidArgumentError(
                f"{field} keys must be 1 to {MAX_METADATA_KEY_LENGTH} characters; got {key[:40]!r}.",
                field=field,
                reason=FIELD_TOO_LONG if key else "INVALID_ARGUMENT",
            )
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise InvalidArgumentError(
                f"{field}[{key[:40]!r}] is longer than {MAX_METADATA_VALUE_LENGTH} characters.",
                field=field,
                reason=FIELD_TOO_LONG,
            )


def check_timestamp(field: str, stamp: Timestamp) -> None:
    in_range = MIN_TIMESTAMP_SECONDS <= stamp.seconds <= MAX_TIMESTAMP_SECONDS
    if not in_range or not 0 <= stamp.nanos <= MAX_NANOS:
        raise InvalidArgumentError(
            f"{field} (seconds={stamp.seconds}, nanos={stamp.nanos}) is not a valid Timestamp: seconds "
            f"must be from {MIN_TIMESTAMP_SECONDS} to {MAX_TIMESTAMP_SECONDS} (years 1 to 9999) and "
            f"nanos from 0 to {MAX_NANOS}.",
            field=field,
            reason=TIMESTAMP_OUT_OF_RANGE,
        )


# ----- what depends on the method ------------------------------------------------------------


def optional_time(request: Message, field: str) -> datetime | None:
    """A Timestamp field (already range-checked by `check_request`) as a datetime; None if unset."""
    if not request.HasField(field):
        return None
    stamp: Timestamp = getattr(request, field)
    return stamp.ToDatetime(tzinfo=UTC)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def require(value: str, field: str, what: str) -> str:
    if not value.strip():
        raise InvalidArgumentError(f"{field} is required: {what}.", field=field)
    return value


def require_run_id(run_id: str) -> str:
    return require(run_id, "run_id", "pass the id CreateRun returned (e.g. run_…)")


def require_interruption_id(interruption_id: str) -> str:
    return require(
        interruption_id, "interruption_id", "pass an id from Run.interruptions or ListInterruptions"
    )


def parse_input_items(text: str, max_items: int) -> list[dict[str, Any]]:
    try:
        items = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise InvalidArgumentError(
            f"input_items_json is not valid JSON ({error}). Pass a JSON array of input items, "
            'e.g. [{"role": "user", "content": "Hello"}].',
            field="input_items_json",
        ) from error
    if not isinstance(items, list) or not items or not all(isinstance(item, dict) for item in items):
        raise InvalidArgumentError(
            "input_items_json must be a non-empty JSON array of objects (Responses-API input items), "
            'e.g. [{"role": "user", "content": "Hello"}].',
            field="input_items_json",
        )
    if len(items) > max_items:
        raise InvalidArgumentError(
            f"input_items_json has {len(items)} items; at most {max_items} are allowed. Keep earlier "
            "turns in a session (session_id) instead of resending them.",
            field="input_items_json",
            reason="TOO_MANY_INPUT_ITEMS",
        )
    return items


def new_run_from_create(request: runs_pb2.CreateRunRequest, limits: Limits) -> NewRun:
    agent = require(request.agent, "agent", "name a registered agent (see AgentService.ListAgents)")
    if request.input and request.input_items_json:
        raise InvalidArgumentError(
            "Set either input or input_items_json, not both.", field="input_items_json"
        )
    run_input: str | list[dict[str, Any]]
    if request.input_items_json:
        run_input = parse_input_items(request.input_items_json, limits.max_input_items)
    elif request.input.strip():
        run_input = request.input
    else:
        raise InvalidArgumentError(
            "The run has no input: set input (plain text) or input_items_json (a JSON array of items).",
            field="input",
        )
    return NewRun(
        agent=agent,
        input=run_input,
        session_id=ids.session_id(request.session_id),
        model=request.model,
        request_id=ids.request_id(request.request_id),
        metadata=dict(request.metadata),
        keep=request.keep,
        multitask_strategy=multitask_strategy_from_proto(request.multitask_strategy),
        approval=approval_policy(request),
        webhook_url=request.webhook_url,
    )


def approval_policy(request: runs_pb2.CreateRunRequest | runs_pb2.ImportRunStateRequest) -> ApprovalPolicy:
    """What a new run (created or imported) asks for its interruptions' expiry."""
    return ApprovalPolicy(
        timeout=approval_timeout(request),
        auto_resume=request.auto_resume_on_expiry,
        expiry_message=request.approval_expiry_message,
    )


def approval_timeout(request: runs_pb2.CreateRunRequest | runs_pb2.ImportRunStateRequest) -> timedelta | None:
    if not request.HasField("approval_timeout"):
        return None  # the agent's default, else the service's --approval-timeout, if any
    duration = request.approval_timeout
    if not (0 <= duration.nanos < 1_000_000_000 and duration.seconds >= 0):
        raise InvalidArgumentError(
            "approval_timeout must be a positive duration, e.g. 3600s.", field="approval_timeout"
        )
    timeout = duration.ToTimedelta()
    if not MIN_APPROVAL_TIMEOUT <= timeout <= MAX_APPROVAL_TIMEOUT:
        raise InvalidArgumentError(
            f"approval_timeout must be from {MIN_APPROVAL_TIMEOUT.total_seconds():g} s to "
            f"{MAX_APPROVAL_TIMEOUT.days} days; got {timeout.total_seconds():g} s.",
            field="approval_timeout",
        )
    return timeout


def multitask_strategy_from_proto(value: int) -> MultitaskStrategy | None:
    """None for UNSPECIFIED (the service's default); INVALID_ARGUMENT for unknown numbers."""
    if value == runs_pb2.MULTITASK_STRATEGY_UNSPECIFIED:
        return None
    if value not in runs_pb2.MultitaskStrategy.values():
        names = ", ".join(MultitaskStrategy.__members__)
        raise InvalidArgumentError(
            f"multitask_strategy {value} is not a MultitaskStrategy; use one of {names}.",
            field="multitask_strategy",
        )
    return MultitaskStrategy[runs_pb2.MultitaskStrategy.Name(value).removeprefix("MULTITASK_STRATEGY_")]


def require_state_json(state_json: str) -> str:
    if not state_json.strip():
        raise InvalidArgumentError(
            "state_json is required: pass the string RunState.to_string() returned.", field="state_json"
        )
    return state_json
