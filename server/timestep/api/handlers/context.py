"""What a handler knows about its call, whatever the transport: whose call it is and how long
its caller waits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from timestep.scope import Scope


@dataclass(frozen=True)
class CallContext:
    """Built by each transport's adapter before the handler runs: `tenant` from the caller's API
    key ('' without keys), `deadline` from the caller's timeout (None: it set none)."""

    tenant: str
    deadline: datetime | None = None

    @property
    def scope(self) -> Scope:
        """What the caller may see: its tenant's runs only."""
        return Scope.tenant(self.tenant)

    def waiting_deadline(self, wait: bool) -> datetime | None:
        """The deadline of a caller that waits for the segment it starts: the segment stops when
        it passes (nobody is waiting any more). A caller that does not wait has detached from the
        run."""
        return self.deadline if wait else None
