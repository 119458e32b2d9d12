"""Whose runs a call may see: one tenant's, or, for the service's own work, every tenant's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Scope:
    """Required by every call that reads or changes runs on a caller's behalf, so that leaving
    it out cannot widen what a caller sees.

    `Scope.tenant(t)`: tenant `t`'s runs only; another tenant's run is NOT_FOUND, exactly like
    a run that does not exist. `Scope.ALL`: every tenant's, for internal callers (recovery,
    sweeps, segments, metrics) only, never built from a request."""

    # The tenant whose runs are visible; None: every tenant's.
    only: str | None

    ALL: ClassVar[Scope]

    @classmethod
    def tenant(cls, tenant: str) -> Scope:
        return cls(tenant)


Scope.ALL = Scope(None)
