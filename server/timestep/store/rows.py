"""What the stores share: the connection type their helpers take, how a run, its interruptions,
its events and usage are read from their rows, and the NOT_FOUND of a run that does not exist."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from timestep.domain import (
    ApprovalPolicy,
    EventKind,
    Interruption,
    InterruptionStatus,
    Run,
    RunError,
    RunStatus,
    Usage,
)
from timestep.errors import NotFoundError
from timestep.event_types import RunEvent, event_from_json

# What pool.acquire() yields; the stores' helpers take either kind.
Connection = asyncpg.Connection | PoolConnectionProxy

# The usage columns, in the order of Usage.values().
USAGE_COLUMNS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
)


def usage_from_row(row: asyncpg.Record | dict[str, Any], prefix: str = "") -> Usage:
    return Usage(*(row[f"{prefix}{column}"] for column in USAGE_COLUMNS))


# What a Run is read from: the columns of `runs` (not its input, which can be large; see
# RunStore.segment_start), and, in the same query, its interruptions as JSON (not as an array of the
# table's row type: asyncpg caches a row type's columns per connection, so a migration adding one
# would break the reads of replicas still running).
RUN_COLUMNS = (
    "r.id, r.agent, r.current_agent, r.status, r.session_id, r.model, r.final_output, r.error_code, "
    "r.error_message, r.metadata, r.request_id, r.segment_count, r.last_sequence, r.create_time, "
    "r.update_time, r.queue_name, r.tenant, r.segment_deadline, r.version, r.keep, r.approval_timeout, "
    "r.auto_resume_on_expiry, r.approval_expiry_message, "
    "(SELECT w.id FROM webhooks w WHERE w.run_id = r.id ORDER BY w.create_time LIMIT 1) AS webhook_id, "
    + ", ".join(f"r.usage_{column}" for column in USAGE_COLUMNS)
)
RUN_INTERRUPTIONS = (
    "(SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.segment, i.create_time, i.id), '[]') "
    "FROM interruptions i WHERE i.run_id = r.id) AS interruption_rows"
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def run_not_found(run_id: str) -> NotFoundError:
    return NotFoundError(
        f"No run has id {run_id!r}. List runs with RunService.ListRuns.", reason="RUN_NOT_FOUND"
    )


def interruption_from_row(row: asyncpg.Record | dict[str, Any]) -> Interruption:
    return Interruption(
        id=row["id"],
        run_id=row["run_id"],
        segment=row["segment"],
        agent=row["agent"],
        tool_name=row["tool_name"],
        call_id=row["call_id"],
        arguments_json=row["arguments_json"],
        status=InterruptionStatus(row["status"]),
        always=row["always"],
        message=row["message"],
        create_time=row["create_time"],
        decide_time=row["decide_time"],
        approved_arguments_json=row["approved_arguments_json"],
        decided_by=row["decided_by"],
        expire_time=row["expire_time"],
        expired=row["expired"],
    )


def interruptions_from_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Interruption rows aggregated as JSON (`_RUN_INTERRUPTIONS`), with their times parsed."""
    return [
        {
            **row,
            "create_time": datetime.fromisoformat(row["create_time"]),
            "decide_time": datetime.fromisoformat(row["decide_time"]) if row["decide_time"] else None,
            "expire_time": datetime.fromisoformat(row["expire_time"]) if row["expire_time"] else None,
        }
        for row in rows
    ]


def run_from_row(row: asyncpg.Record, interruptions: Sequence[asyncpg.Record | dict[str, Any]]) -> Run:
    error = RunError(row["error_code"], row["error_message"] or "") if row["error_code"] else None
    return Run(
        id=row["id"],
        agent=row["agent"],
        current_agent=row["current_agent"],
        status=RunStatus(row["status"]),
        session_id=row["session_id"],
        model=row["model"],
        final_output=row["final_output"],
        error=error,
        metadata=dict(row["metadata"]),
        request_id=row["request_id"] or "",
        usage=usage_from_row(row, "usage_"),
        segment_count=row["segment_count"],
        last_sequence=row["last_sequence"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        interruptions=[interruption_from_row(i) for i in interruptions],
        queue_name=row["queue_name"],
        tenant=row["tenant"],
        segment_deadline=row["segment_deadline"],
        approval=ApprovalPolicy(
            row["approval_timeout"], row["auto_resume_on_expiry"], row["approval_expiry_message"]
        ),
        webhook_id=row["webhook_id"] or "",
        version=row["version"],
        keep=row["keep"],
    )


def event_from_row(row: asyncpg.Record) -> RunEvent:
    return RunEvent(
        run_id=row["run_id"],
        sequence=row["sequence"],
        segment=row["segment"],
        data=event_from_json(EventKind(row["kind"]), row["payload"]),
        time=row["create_time"],
    )
