"""The service's own small types, shared by the API, orchestration and storage layers.

They are deliberately independent of protobuf and of the Agents SDK, so a change to either
does not ripple through the core.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from timestep import ids

T = TypeVar("T")


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_stopped(self) -> bool:
        """True when nothing is happening until someone acts (or ever again)."""
        return self in STOPPED_STATUSES

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_STATUSES


FINISHED_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
STOPPED_STATUSES = FINISHED_STATUSES | {RunStatus.INTERRUPTED}


class MultitaskStrategy(enum.StrEnum):
    """What a new run of a busy session does (see CreateRunRequest.multitask_strategy)."""

    REJECT = "reject"
    ENQUEUE = "enqueue"
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"


# Runs of a session that hold or wait for its turn.
SESSION_ACTIVE_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.INTERRUPTED})


class InterruptionStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class EventKind(enum.StrEnum):
    """Kinds of run events; each has its dataclass in `timestep.event_types`."""

    STATUS_CHANGED = "status_changed"
    MESSAGE_OUTPUT = "message_output"
    TOOL_CALLED = "tool_called"
    TOOL_OUTPUT = "tool_output"
    HANDOFF = "handoff"
    INTERRUPTION = "interruption"
    INTERRUPTION_DECIDED = "interruption_decided"
    FINAL_OUTPUT = "final_output"
    ERROR = "error"
    USAGE = "usage"
    TEXT_DELTA = "text_delta"  # live only, never stored
    REASONING = "reasoning"
    INTERRUPTION_EXPIRED = "interruption_expired"


@dataclass(frozen=True)
class Usage:
    """Model usage. Cached tokens are part of input_tokens, reasoning tokens part of output_tokens;
    cost_usd is an estimate from the service's price table."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.requests + other.requests,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cost_usd + other.cost_usd,
        )

    def values(self) -> tuple[int, int, int, int, int, int, float]:
        """The fields in declaration order (the order of the store's usage columns)."""
        return (
            self.requests,
            self.input_tokens,
            self.output_tokens,
            self.total_tokens,
            self.cached_tokens,
            self.reasoning_tokens,
            self.cost_usd,
        )

    def to_dict(self) -> dict[str, int | float]:
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_usd,
        }


@dataclass(frozen=True)
class ModelCall:
    """One model call: which agent called which model (as routed, e.g. "ollama/llama3.2"), what
    it used, and whether the price table knew the model's price."""

    agent: str
    model: str
    usage: Usage
    priced: bool
    time: datetime


@dataclass(frozen=True)
class UsageFilter:
    """Which model calls a usage summary covers: [start, end) and optionally one agent or model."""

    start: datetime | None = None
    end: datetime | None = None
    agent: str = ""
    model: str = ""


@dataclass(frozen=True)
class UsageGroup:
    """The summed usage of one agent's calls to one model."""

    agent: str
    model: str
    usage: Usage
    run_count: int


@dataclass(frozen=True)
class UsageSummary:
    total: Usage
    run_count: int
    groups: list[UsageGroup]


class RunErrorCode(enum.StrEnum):
    """Every `RunError.code` the service writes; runs.proto's `RunError.code` comment lists the
    same (a unit test holds them together)."""

    MODEL_NOT_CONFIGURED = "model_not_configured"
    MODEL_AUTH = "model_auth"
    MODEL_UNREACHABLE = "model_unreachable"
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_RATE_LIMITED = "model_rate_limited"
    MODEL_INPUT_UNSUPPORTED = "model_input_unsupported"
    MODEL_ERROR = "model_error"
    MODEL_BEHAVIOR = "model_behavior"
    MAX_TURNS_EXCEEDED = "max_turns_exceeded"
    AGENT_ERROR = "agent_error"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    NONDETERMINISTIC_REPLAY = "nondeterministic_replay"
    JOURNAL_INCOMPATIBLE = "journal_incompatible"
    RECOVERY_FAILED = "recovery_failed"
    CANCELLED = "cancelled"
    INTERNAL = "internal"


@dataclass(frozen=True)
class RunError:
    """Why a run failed or was cancelled. `code` is stable; `message` is for people."""

    # A RunErrorCode when written; read back as stored, which may be a code an older version wrote.
    code: str
    message: str


@dataclass(frozen=True)
class Interruption:
    id: str
    run_id: str
    segment: int
    agent: str
    tool_name: str
    call_id: str
    arguments_json: str
    status: InterruptionStatus
    always: bool
    message: str
    create_time: datetime
    decide_time: datetime | None
    # The arguments the approver edited the call to run with ('' when it runs as proposed).
    approved_arguments_json: str = ""
    # Who decided, as the decision said ("timestep:expiry" when its approval timed out).
    decided_by: str = ""
    # When it is rejected by itself if still pending (None: never), and whether it was.
    expire_time: datetime | None = None
    expired: bool = False


# The shortest and the longest approval timeout a run (or an agent's default) may ask for.
MIN_APPROVAL_TIMEOUT = timedelta(seconds=1)
MAX_APPROVAL_TIMEOUT = timedelta(days=365)


@dataclass(frozen=True)
class ApprovalPolicy:
    """How long a run's interruptions may wait for a decision, and what happens when they expire."""

    timeout: timedelta | None = None
    auto_resume: bool = False
    # What the model is told about an expired call ('' for the service's default).
    expiry_message: str = ""

    def fingerprint_fields(self) -> dict[str, Any]:
        """Only what differs from the default, so that runs without a policy keep the
        idempotency fingerprint they always had."""
        fields: dict[str, Any] = {}
        if self.timeout is not None:
            fields["approval_timeout_s"] = self.timeout.total_seconds()
        if self.auto_resume:
            fields["auto_resume_on_expiry"] = True
        if self.expiry_message:
            fields["approval_expiry_message"] = self.expiry_message
        return fields


@dataclass(frozen=True)
class Run:
    id: str
    agent: str
    current_agent: str
    status: RunStatus
    session_id: str
    model: str
    final_output: str
    error: RunError | None
    metadata: dict[str, str]
    request_id: str
    usage: Usage
    # The segment the run is in or queued for, which is also how many it has begun (the name
    # of Run.segment_count in the proto and of the runs column).
    segment_count: int
    last_sequence: int
    create_time: datetime
    update_time: datetime
    interruptions: list[Interruption] = field(default_factory=list)
    # The queue a QUEUED run waits on ('' otherwise or without queues), and its place there.
    queue_name: str = ""
    queue_position: int = 0
    # The tenant of the API key that created the run ('' without API keys).
    tenant: str = ""
    # When the current segment must stop: the deadline of the caller waiting for it, if any.
    segment_deadline: datetime | None = None
    # Approvals: how long each interruption may wait (None: forever), whether expiry resumes the
    # run, and what the model is told when one expires ('' for the service's default).
    approval: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    # The run's own webhook (CreateRun's webhook_url), if it has one.
    webhook_id: str = ""
    # How many transitions the run has made: a transition applies only to the version it was
    # decided from.
    version: int = 0
    # Retention never deletes a kept run.
    keep: bool = False

    @property
    def session_key(self) -> str:
        """Where the session's items are stored: sessions are per tenant, so two tenants' "s1"
        are two conversations."""
        return ids.scoped(self.tenant, self.session_id)

    @property
    def pending_interruptions(self) -> list[Interruption]:
        return [
            i
            for i in self.interruptions
            if i.segment == self.segment_count and i.status is InterruptionStatus.PENDING
        ]


@dataclass(frozen=True)
class NewRun:
    """What CreateRun / ImportRunState ask for, validated."""

    agent: str
    input: str | list[dict[str, Any]]
    session_id: str = ""
    model: str = ""
    request_id: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # Whose run it is; request ids are unique per tenant.
    tenant: str = ""
    # The deadline of a caller that waits for the first segment (not part of the request's
    # identity: a retry may carry a later one).
    deadline: datetime | None = None
    # Retention never deletes a kept run.
    keep: bool = False
    # What to do if the session is busy (None: the service's default).
    multitask_strategy: MultitaskStrategy | None = None
    approval: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    # Where the run's own events are POSTed ('' for nowhere; see timestep.webhooks).
    webhook_url: str = ""

    def fingerprint_fields(self) -> dict[str, Any]:
        """The arguments an idempotency key is bound to (fields added later only when set)."""
        return {
            "agent": self.agent,
            "input": self.input,
            "session_id": self.session_id,
            "model": self.model,
            "metadata": self.metadata,
            **self.approval.fingerprint_fields(),
            **({"webhook_url": self.webhook_url} if self.webhook_url else {}),
        }


@dataclass(frozen=True)
class PendingEvent:
    """An event to be stored, as the store takes it: its kind and JSON (`event_types.pending`
    builds one from a typed event); the database assigns its sequence and time."""

    kind: EventKind
    payload: dict[str, Any]
    # Events of a segment that may be replayed carry "segment:ordinal"; stored once.
    dedupe_key: str | None = None


@dataclass(frozen=True)
class NewInterruption:
    """A tool call the runtime paused on, before it gets an id.

    An imported RunState may already hold a decision for the call: then `status` says which,
    with `always` and the rejection `message` as decided.
    """

    agent: str
    tool_name: str
    call_id: str
    arguments_json: str
    status: InterruptionStatus = InterruptionStatus.PENDING
    always: bool = False
    message: str = ""


@dataclass(frozen=True)
class Snapshot:
    """A RunState JSON exactly as an SDK wrote it, with who wrote it and its schema version."""

    writer: str  # "python" or "typescript"
    schema_version: str
    state_json: str


@dataclass(frozen=True)
class RunFilter:
    agent: str = ""
    status: RunStatus | None = None
    session_id: str = ""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str


class ScheduleState(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


@dataclass(frozen=True)
class ScheduleSpec:
    """What a schedule runs, and when."""

    cron: str
    timezone: str
    agent: str
    input: str
    model: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Schedule:
    id: str
    spec: ScheduleSpec
    state: ScheduleState
    last_fire_time: datetime | None
    # Firings skipped because the tenant had its maximum of active runs, and the last one's time.
    missed_fires: int = 0
    last_missed_time: datetime | None = None


@dataclass(frozen=True)
class Session:
    """A conversation: the runs of one tenant that named a session id, and the items they added."""

    id: str
    item_count: int
    run_count: int
    # The agents its runs started with, by name.
    agents: list[str]
    create_time: datetime
    last_activity_time: datetime


@dataclass(frozen=True)
class SessionItem:
    """One item of a session's history: the Agents SDK item as JSON data."""

    # Increases with every item stored: the history's order.
    id: int
    item: Any
    # The run whose segment added it ('' for items added outside any run).
    run_id: str
    create_time: datetime


@dataclass(frozen=True)
class Deletion:
    """What a delete removed."""

    runs: int = 0
    session_items: int = 0

    def __add__(self, other: Deletion) -> Deletion:
        return Deletion(self.runs + other.runs, self.session_items + other.session_items)
