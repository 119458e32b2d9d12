"""What the codec raises for a RunState it refuses: its own errors, which callers map to a status.

A state passed in by a caller is an invalid argument of that request; a stored one (a paused
run's) fails a precondition of the request that reads it. `reason` is the stable, machine-readable
cause; `message` says what was wrong and what to do.
"""

from __future__ import annotations

from typing import ClassVar


class StateCodecError(Exception):
    reason: ClassVar[str]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotARunStateError(StateCodecError):
    """The text is not an Agents SDK RunState: not JSON, no schema version, or no SDK's keys."""

    # The generic reason of a malformed argument: the text is not what the field takes at all.
    reason = "INVALID_ARGUMENT"


class UnsupportedStateError(StateCodecError):
    """A RunState that cannot be converted; the message names the construct and the versions."""

    reason = "UNSUPPORTED_STATE"
