"""Domain errors → one transport-neutral description: a canonical status code, the message, and
google.rpc details: ErrorInfo (domain, stable reason, metadata) on every error, plus the detail of
the table. Each transport renders the description its own way (`timestep.api.grpc.status`: a
grpc status with `grpc-status-details-bin`).

| domain error              | code                | detail                                      |
|---------------------------|---------------------|---------------------------------------------|
| NotFoundError             | NOT_FOUND           |                                             |
| InvalidArgumentError      | INVALID_ARGUMENT    | BadRequest (the field, or each violation)   |
| FailedPreconditionError   | FAILED_PRECONDITION | PreconditionFailure (reason, subject)       |
| AlreadyExistsError        | ALREADY_EXISTS      |                                             |
| ResourceExhaustedError    | RESOURCE_EXHAUSTED  | RetryInfo (when to retry)                   |
| UnavailableError          | UNAVAILABLE         | RetryInfo (when to retry)                   |

A transient database error (the database restarting or unreachable) becomes an UnavailableError
(reason DATABASE_UNAVAILABLE).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2

from timestep.errors import (
    AlreadyExistsError,
    DatabaseUnavailableError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    TimestepError,
    UnavailableError,
)
from timestep.outages import is_transient

log = logging.getLogger(__name__)

ERROR_DOMAIN = "timestep.dev"

_CODES: list[tuple[type[TimestepError], int]] = [
    (NotFoundError, code_pb2.NOT_FOUND),
    (InvalidArgumentError, code_pb2.INVALID_ARGUMENT),
    (FailedPreconditionError, code_pb2.FAILED_PRECONDITION),
    (AlreadyExistsError, code_pb2.ALREADY_EXISTS),
    (ResourceExhaustedError, code_pb2.RESOURCE_EXHAUSTED),
    (UnavailableError, code_pb2.UNAVAILABLE),
]

# When a caller refused because the database is away should try again.
DATABASE_RETRY_S = 1.0


@dataclass(frozen=True)
class ErrorDescription:
    """What a caller is told about a failed call, before any transport's encoding."""

    # A google.rpc.Code value; `code_name` is its name ("NOT_FOUND"), which gRPC's and Connect's
    # code enums share.
    code: int
    message: str
    # google.rpc details: ErrorInfo first, then BadRequest, PreconditionFailure or RetryInfo.
    details: tuple[Message, ...]

    @property
    def code_name(self) -> str:
        name: str = code_pb2.Code.Name(self.code)
        return name


def database_unavailable(error: Exception) -> UnavailableError | None:
    """The UnavailableError for a transient database error; None for any other error."""
    if not (is_transient(error) or isinstance(error, DatabaseUnavailableError)):
        return None
    return UnavailableError(
        "The service's database is unreachable right now (restarting or failing over); retry the "
        f"call in a moment ({type(error).__name__}).",
        reason="DATABASE_UNAVAILABLE",
        retry_after_s=DATABASE_RETRY_S,
    )


def domain_error(error: Exception) -> TimestepError:
    """`error` as a domain error; re-raises it when it is none (a bug: the transport answers it
    as an internal error)."""
    if isinstance(error, TimestepError):
        return error
    unavailable = database_unavailable(error)
    if unavailable is None:
        raise error
    log.warning("refused a call: %s", unavailable.message)
    return unavailable


def describe(error: TimestepError, request: Message | None = None) -> ErrorDescription:
    """The description of `error`; `request` names the subject of a precondition failure that
    does not name its own (the request's run)."""
    code = next(number for kind, number in _CODES if isinstance(error, kind))
    reason = error.reason or type(error).__name__
    details: list[Message] = [
        error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    ]
    if isinstance(error, InvalidArgumentError) and error.violations:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in error.violations
        ]
        details.append(error_details_pb2.BadRequest(field_violations=violations))
    if isinstance(error, FailedPreconditionError):
        subject = error.subject or _run_subject(request)
        violation = error_details_pb2.PreconditionFailure.Violation(
            type=reason, subject=subject, description=error.message
        )
        details.append(error_details_pb2.PreconditionFailure(violations=[violation]))
    if isinstance(error, ResourceExhaustedError | UnavailableError):
        delay = duration_pb2.Duration()
        delay.FromTimedelta(datetime.timedelta(seconds=error.retry_after_s))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    return ErrorDescription(code, error.message, tuple(details))


def _run_subject(request: Message | None) -> str:
    """The subject "runs/<run_id>" for a request that names a run, else empty."""
    if request is None or "run_id" not in request.DESCRIPTOR.fields_by_name:
        return ""
    run_id: str = getattr(request, "run_id")  # noqa: B009 - not every request type has it
    return f"runs/{run_id}" if run_id else ""
