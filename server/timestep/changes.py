"""What a transition writes, as plain data: `timestep.runs` decides it from the run it read, the
store applies it in one statement, only if the run is still at the version it was read at.
Also how a segment ended (`SegmentOutcome`), which the runtime reports and a finishing
transition records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from timestep.domain import (
    Interruption,
    ModelCall,
    NewInterruption,
    PendingEvent,
    Run,
    RunError,
    RunStatus,
    Snapshot,
    Usage,
)
from timestep.event_types import StatusChanged, pending


def status_changed(status: RunStatus, reason: str = "") -> PendingEvent:
    """The event of every status change."""
    return pending(StatusChanged(status, reason))


@dataclass(frozen=True)
class SegmentOutcome:
    """How a segment ended."""

    status: RunStatus
    current_agent: str
    usage: Usage
    final_output: str = ""
    error: RunError | None = None
    # The RunState the segment paused with, and the interruptions it paused on.
    snapshot: Snapshot | None = None
    interruptions: Sequence[NewInterruption] = ()
    # Events that belong before the status change (final output, error...).
    events: Sequence[PendingEvent] = ()
    # The segment's model calls, in order (their usage sums to `usage`).
    model_calls: Sequence[ModelCall] = ()


@dataclass(frozen=True)
class SegmentUsage:
    """A segment's usage and its model calls, stored with the transition that ends it."""

    segment: Usage
    calls: Sequence[ModelCall] = ()


@dataclass(frozen=True)
class RunChange:
    """One decided transition: the run as it becomes (`run`: its status, segment, queue,
    deadline, agent, output, error and usage are written), the rows written with it and the
    events announcing it, in order. Applied only while the run is at `version`."""

    run: Run
    version: int
    # The segment the events belong to.
    segment: int
    events: Sequence[PendingEvent]
    # New interruptions, and the decision recorded on a pending one.
    interruptions: Sequence[Interruption] = ()
    decision: Interruption | None = None
    snapshot: Snapshot | None = None
    usage: SegmentUsage | None = None
    # The change makes the run QUEUED or RUNNING: the tenant's limit on active runs applies.
    adds_active: bool = False


@dataclass(frozen=True)
class Admission:
    """How a new run joins its busy session, decided by `timestep.runs` from the session's active
    runs and written by the store in the new run's insert transaction: the reason its QUEUED
    event gives, the runs ahead of it cancelled (each a change), and whose session items go."""

    queued_reason: str = ""
    cancel: Sequence[RunChange] = ()
    remove_items_of: Sequence[str] = ()


# Decides a new run's admission from its id and its session's active runs (in turn order);
# raises the refusal's error when the run may not join.
Admit = Callable[[str, list[Run]], Admission]
