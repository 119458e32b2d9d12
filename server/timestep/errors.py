"""Domain errors. Each maps to exactly one status code (`timestep.api.errors` describes it, each
transport renders it).

Messages are written for the person who has to act on them: what was wrong and what to do.
"""

from __future__ import annotations


class TimestepError(Exception):
    """Base class of the errors callers can cause (as opposed to bugs)."""

    def __init__(self, message: str, *, reason: str = "", metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # A stable, machine-readable reason such as "RUN_NOT_FOUND".
        self.reason = reason
        # Sent as google.rpc.ErrorInfo.metadata: facts a program may act on.
        self.metadata = metadata or {}


class NotFoundError(TimestepError):
    """An id or name refers to nothing (or to something the caller may not see)."""


class InvalidArgumentError(TimestepError):
    """The request itself is malformed, whatever the state of the system."""

    def __init__(
        self,
        message: str,
        *,
        field: str = "",
        reason: str = "INVALID_ARGUMENT",
        violations: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.field = field
        # (field, description) of each problem, when there are several; else `field` and the message.
        self.violations = violations or ([(field, message)] if field else [])


class FailedPreconditionError(TimestepError):
    """The request is well-formed but the run is in the wrong state for it."""

    def __init__(
        self, message: str, *, reason: str = "", subject: str = "", metadata: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        # What is in the wrong state, e.g. "runs/run_…"; empty: the run the request names.
        self.subject = subject


class AlreadyExistsError(TimestepError):
    """An idempotency key was reused with different arguments."""


class ResourceExhaustedError(TimestepError):
    """A limit on how much may happen at once was reached; the same call may succeed later."""

    def __init__(self, message: str, *, reason: str, retry_after_s: float) -> None:
        super().__init__(message, reason=reason)
        # Sent as google.rpc.RetryInfo.retry_delay: when a retry is worth trying.
        self.retry_after_s = retry_after_s


class UnavailableError(TimestepError):
    """The service cannot answer now (its database is unreachable); the same call may succeed later."""

    def __init__(self, message: str, *, reason: str, retry_after_s: float) -> None:
        super().__init__(message, reason=reason)
        self.retry_after_s = retry_after_s


class DatabaseUnavailableError(Exception):
    """The database stayed unreachable for as long as a durable operation waits for it (not a
    TimestepError: the API answers it, like any transient database error, with UnavailableError)."""
