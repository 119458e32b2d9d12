"""The event codec: every kind survives the trip to the database's JSON and back, timestamps stay
datetimes, and rows written before the types existed still read."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from timestep.domain import EventKind, Interruption, InterruptionStatus, ModelCall, RunError, RunStatus, Usage
from timestep.event_types import (
    EventData,
    FinalOutput,
    Handoff,
    InterruptionDecided,
    InterruptionExpired,
    InterruptionRaised,
    MessageOutput,
    Reasoning,
    RunFailed,
    StatusChanged,
    TextDelta,
    ToolCalled,
    ToolOutput,
    UsageReported,
    event_from_json,
    pending,
)

WHEN = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
INTERRUPTION = Interruption(
    id="int_1",
    run_id="run_1",
    segment=2,
    agent="billing",
    tool_name="refund",
    call_id="call_1",
    arguments_json='{"amount": 5}',
    status=InterruptionStatus.APPROVED,
    always=True,
    message="ok \x00 🧪",
    create_time=WHEN,
    decide_time=WHEN,
)
USAGE = Usage(1, 10, 5, 15, 2, 1, 0.25)

EVERY_KIND: list[EventData] = [
    StatusChanged(RunStatus.INTERRUPTED, "waiting \ud800"),
    MessageOutput("a", "hello", "{}"),
    ToolCalled("a", "refund", "call_1", '{"amount": 5}', "{}"),
    ToolOutput("a", "call_1", "done", "{}"),
    Handoff("triage", "billing"),
    InterruptionRaised(INTERRUPTION),
    InterruptionDecided(INTERRUPTION),
    InterruptionExpired(
        replace(
            INTERRUPTION,
            status=InterruptionStatus.REJECTED,
            approved_arguments_json='{"amount": 4}',
            decided_by="timestep:expiry",
            expire_time=WHEN,
            expired=True,
        )
    ),
    FinalOutput("a", "All done."),
    RunFailed(RunError("model_error", "The model refused.")),
    UsageReported(USAGE, USAGE + USAGE, (ModelCall("a", "gpt-4o", USAGE, True, WHEN),)),
    TextDelta("a", "Hel", "msg_1"),
    Reasoning("a", "{}"),
]


def test_every_kind_has_a_type() -> None:
    assert sorted(data.kind for data in EVERY_KIND) == sorted(EventKind)


@pytest.mark.parametrize("data", EVERY_KIND, ids=[data.kind.value for data in EVERY_KIND])
def test_an_event_survives_the_database_json(data: EventData) -> None:
    stored = pending(data)
    # As PostgreSQL's jsonb gives it back: through JSON text.
    read = event_from_json(stored.kind, json.loads(json.dumps(stored.payload)))

    assert read == data


def test_interruption_times_are_datetimes_in_the_domain() -> None:
    read = event_from_json(EventKind.INTERRUPTION, pending(InterruptionRaised(INTERRUPTION)).payload)

    assert isinstance(read, InterruptionRaised)
    assert read.interruption.create_time == WHEN
    assert read.interruption.decide_time == WHEN


def test_rows_stored_before_the_types_still_read() -> None:
    """Rows as earlier versions wrote them: usage without model calls, a pending interruption
    with no decide time."""
    usage = event_from_json(EventKind.USAGE, {"segment": USAGE.to_dict(), "total": USAGE.to_dict()})
    waiting = event_from_json(
        EventKind.INTERRUPTION,
        {
            "id": "int_1",
            "run_id": "run_1",
            "segment": 1,
            "agent": "a",
            "tool_name": "t",
            "call_id": "c",
            "arguments_json": "{}",
            "status": "pending",
            "always": False,
            "message": "",
            "create_time": WHEN.isoformat(),
            "decide_time": None,
        },
    )

    assert usage == UsageReported(USAGE, USAGE, ())
    assert isinstance(waiting, InterruptionRaised)
    assert waiting.interruption.status is InterruptionStatus.PENDING
    assert waiting.interruption.decide_time is None
