"""Service defaults and the small settings types, in a module that imports nothing heavy, so the
command line can describe `serve` without loading gRPC servicers, DBOS or the Agents SDK."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PORT = 50051
DEFAULT_AGENTS = "timestep.examples.agents:AGENTS"
DEFAULT_MAX_TURNS = 10
# A replica silent this long is presumed dead and its segments are recovered elsewhere.
DEFAULT_REPLICA_TIMEOUT_S = 15.0
# A run QUEUED or RUNNING this long without a live segment workflow is recovered (or failed).
DEFAULT_STRANDED_GRACE_S = 10.0
DEFAULT_SHUTDOWN_GRACE_S = 10.0
DEFAULT_KEEPALIVE_TIME_MS = 60_000
DEFAULT_KEEPALIVE_TIMEOUT_MS = 20_000


class ConfigurationError(ValueError):
    """The service cannot start with this configuration; the message says what to change."""


@dataclass(frozen=True)
class ProviderLimits:
    """Limits on one model provider's queue: segments running at once and starts per period."""

    concurrency: int | None = None
    requests: int | None = None
    period_s: float = 1.0


@dataclass(frozen=True)
class Limits:
    """What one request may carry. Exceeding a transport limit is RESOURCE_EXHAUSTED (from gRPC
    itself); exceeding a content limit is INVALID_ARGUMENT naming the field. Nothing is written
    either way."""

    # Largest request message the server accepts (grpc.max_receive_message_length).
    max_message_bytes: int = 16 * 1024 * 1024
    # Largest request metadata (headers) the server accepts (grpc.max_metadata_size).
    max_metadata_bytes: int = 16 * 1024
    # RPCs open at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); clients
    # queue further calls until one ends.
    max_concurrent_streams: int = 1000
    # CreateRun.input_items_json: at most this many items.
    max_input_items: int = 1000
    # ImportRunState.state_json: at most this many bytes (UTF-8); also bounded by the message size.
    max_state_bytes: int = 8 * 1024 * 1024
    # Runs QUEUED or RUNNING at once per tenant (0: no limit); a CreateRun or ResumeRun beyond it
    # is RESOURCE_EXHAUSTED with a RetryInfo.
    max_active_runs: int = 0
