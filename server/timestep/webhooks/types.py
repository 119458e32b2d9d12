"""The webhook subsystem's own small types (no protobuf, no SQL)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

# The run events a webhook may subscribe to, and the event SendTestEvent sends.
RUN_EVENT_TYPES: Final = (
    "run.interrupted",
    "run.completed",
    "run.failed",
    "run.cancelled",
    "interruption.expired",
)
TEST_EVENT_TYPE: Final = "webhook.test"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Webhook:
    id: str
    tenant: str
    url: str
    event_types: list[str]
    description: str
    create_time: datetime
    secret_time: datetime
    # Set for the webhook of one run (CreateRun's webhook_url).
    run_id: str = ""
    # Until when deliveries are also signed with the secret the last rotation replaced.
    previous_secret_expire_time: datetime | None = None


@dataclass(frozen=True)
class Attempt:
    number: int
    time: datetime
    # 0: no response (see `error`).
    response_code: int
    latency_ms: float
    error: str = ""
    response_prefix: str = ""


@dataclass(frozen=True)
class Delivery:
    id: str
    webhook_id: str
    event_type: str
    run_id: str
    # The run event it tells about (0 for a test event).
    sequence: int
    status: DeliveryStatus
    create_time: datetime
    finish_time: datetime | None
    attempts: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """Where and how one attempt is sent: read at each attempt, so a rotated secret applies."""

    url: str
    secret: str
    # The secret the last rotation replaced, while it is still accepted ('' otherwise).
    previous_secret: str = ""


@dataclass(frozen=True)
class AttemptOutcome:
    """What an attempt got back; `delivered` when the receiver answered 2xx."""

    response_code: int
    latency_ms: float
    error: str = ""
    response_prefix: str = ""

    @property
    def delivered(self) -> bool:
        return 200 <= self.response_code < 300
