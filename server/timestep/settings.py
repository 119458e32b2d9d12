"""Service defaults and the small settings types, in a module that imports nothing heavy, so the
command line can describe `serve` without loading gRPC servicers, DBOS or the Agents SDK."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PORT = 50051
DEFAULT_AGENTS = "timestep.examples.agents:AGENTS"
DEFAULT_MAX_TURNS = 10
# A replica silent this long is presumed dead and its segments are recovered elsewhere.
DEFAULT_REPLICA_TIMEOUT_S = 15.0
DEFAULT_SHUTDOWN_GRACE_S = 10.0
DEFAULT_KEEPALIVE_TIME_MS = 60_000
DEFAULT_KEEPALIVE_TIMEOUT_MS = 20_000


@dataclass(frozen=True)
class ProviderLimits:
    """Limits on one model provider's queue: segments running at once and starts per period."""

    concurrency: int | None = None
    requests: int | None = None
    period_s: float = 1.0
