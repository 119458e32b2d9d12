"""Applying a decided run transition (`timestep.changes.RunChange`) in one round trip:
`timestep_apply_transition` (migration 0014) writes it only if the run is still at the version
it was decided from, with its rows and events, and NOTIFYs."""

from __future__ import annotations

from typing import Any

import asyncpg

from timestep.changes import RunChange
from timestep.errors import ResourceExhaustedError
from timestep.event_types import RunEvent, interruption_json
from timestep.store.content import escape_texts
from timestep.store.rows import USAGE_COLUMNS, Connection, event_from_row

# How soon a caller refused for its number of active runs should try again.
ACTIVE_RUNS_RETRY_S = 1.0
# The SQLSTATE of a transition refused for the tenant's number of active runs.
_TOO_MANY_ACTIVE = "TS429"


def _run_columns(change: RunChange) -> dict[str, Any]:
    run = change.run
    return {
        "status": run.status.value,
        "segment_count": run.segment_count,
        "queue_name": run.queue_name,
        "segment_deadline": run.segment_deadline.isoformat() if run.segment_deadline else None,
        "current_agent": run.current_agent,
        "final_output": run.final_output,
        "error_code": run.error.code if run.error else None,
        "error_message": run.error.message if run.error else None,
        **{f"usage_{column}": value for column, value in zip(USAGE_COLUMNS, run.usage.values(), strict=True)},
    }


def _extras(change: RunChange) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if change.interruptions:
        extras["interruptions"] = [interruption_json(i) for i in change.interruptions]
    if change.decision is not None:
        extras["decision"] = interruption_json(change.decision)
    if change.snapshot is not None:
        snapshot = change.snapshot
        extras["snapshot"] = {
            "writer": snapshot.writer,
            "schema_version": snapshot.schema_version,
            "state_json": snapshot.state_json,
        }
    if change.usage is not None:
        extras["usage"] = dict(zip(USAGE_COLUMNS, change.usage.segment.values(), strict=True))
        extras["model_calls"] = [
            {
                "ordinal": ordinal,
                "agent": call.agent,
                "model": call.model,
                **dict(zip(USAGE_COLUMNS, call.usage.values(), strict=True)),
                "priced": call.priced,
                "call_time": call.time.isoformat(),
            }
            for ordinal, call in enumerate(change.usage.calls, start=1)
        ]
    return extras


async def apply_change(
    connection: Connection | asyncpg.Pool,
    change: RunChange,
    *,
    notify_channel: str,
    origin: str,
    max_active_runs: int,
) -> list[RunEvent] | None:
    """Write `change`; its stored events, or None when the run moved past `change.version`
    (nothing was written: read the run again and decide again). With `max_active_runs`, a
    change that adds an active run its tenant has no room for is refused."""
    try:
        rows = await connection.fetch(
            "SELECT * FROM timestep_apply_transition($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            change.run.id,
            change.version,
            change.segment,
            _run_columns(change),
            _extras(change),
            max_active_runs if change.adds_active else 0,
            escape_texts([e.kind.value for e in change.events]),
            [e.payload for e in change.events],
            notify_channel,
            f"{origin}:{change.run.id}:",
        )
    except asyncpg.PostgresError as error:
        if getattr(error, "sqlstate", None) == _TOO_MANY_ACTIVE:
            raise too_many_active_runs(max_active_runs) from None
        raise
    if not rows:
        return None
    return sorted((event_from_row(row) for row in rows), key=lambda e: e.sequence)


def too_many_active_runs(limit: int) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"{limit} runs are already queued or running, the most this service allows at "
        "once; retry when one of them finishes or pauses.",
        reason="TOO_MANY_ACTIVE_RUNS",
        retry_after_s=ACTIVE_RUNS_RETRY_S,
    )
