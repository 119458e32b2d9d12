"""Domain errors → gRPC status codes, with google.rpc details: ErrorInfo (domain, stable reason)
on every error, plus the detail of the table.

| domain error              | gRPC code           | detail                                      |
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
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from timestep.api.validation import check_request
from timestep.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    TimestepError,
    UnavailableError,
)
from timestep.observability.interceptor import with_behavior
from timestep.settings import Limits
from timestep.store.retry import DatabaseUnavailableError, is_transient

log = logging.getLogger(__name__)

ERROR_DOMAIN = "timestep.dev"

_CODES: list[tuple[type[TimestepError], grpc.StatusCode, int]] = [
    (NotFoundError, grpc.StatusCode.NOT_FOUND, code_pb2.NOT_FOUND),
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION, code_pb2.FAILED_PRECONDITION),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS, code_pb2.ALREADY_EXISTS),
    (ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED, code_pb2.RESOURCE_EXHAUSTED),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE, code_pb2.UNAVAILABLE),
]

# When a caller refused because the database is away should try again.
DATABASE_RETRY_S = 1.0


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


def status_code_for(error: TimestepError) -> grpc.StatusCode:
    return next(code for kind, code, _ in _CODES if isinstance(error, kind))


def to_rpc_status(error: TimestepError, request: Message | None = None) -> grpc.Status:
    """The status for `error`; `request` names the subject of a precondition failure that does
    not name its own (the request's run)."""
    numeric = next(number for kind, _, number in _CODES if isinstance(error, kind))
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
    packed = []
    for detail in details:
        wrapped = any_pb2.Any()
        wrapped.Pack(detail)
        packed.append(wrapped)
    return rpc_status.to_status(status_pb2.Status(code=numeric, message=error.message, details=packed))


def _run_subject(request: Message | None) -> str:
    """The subject "runs/<run_id>" for a request that names a run, else empty."""
    if request is None or "run_id" not in request.DESCRIPTOR.fields_by_name:
        return ""
    run_id: str = getattr(request, "run_id")  # noqa: B009 - not every request type has it
    return f"runs/{run_id}" if run_id else ""


@dataclass(frozen=True)
class MalformedRequest:
    """What a servicer receives instead of a request that could not be parsed."""

    problem: str


class MalformedRequests(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Requests that cannot be parsed (a string field that is not UTF-8, truncated bytes) reach
    the servicer as a MalformedRequest, which `unary`/`server_streaming` answer with
    INVALID_ARGUMENT; gRPC itself would answer UNKNOWN."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer

        def parse_or_describe(data: bytes) -> Any:
            try:
                return parse(data)
            except DecodeError as error:
                return MalformedRequest(str(error))

        behavior = (
            handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
        )
        return with_behavior(handler, behavior, request_deserializer=parse_or_describe)


def _reject_malformed(request: Any) -> None:
    if isinstance(request, MalformedRequest):
        raise InvalidArgumentError(
            f"The request could not be read ({request.problem}). Send a serialized message of the "
            "method's request type; string fields must be valid UTF-8.",
            reason="MALFORMED_REQUEST",
        )


Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response")


class Servicer(Protocol):
    """A servicer of ours: its requests are checked against these limits."""

    @property
    def limits(self) -> Limits: ...


AnyServicer = TypeVar("AnyServicer", bound=Servicer)


def unary(
    method: Callable[[AnyServicer, Request, grpc.aio.ServicerContext], Awaitable[Response]],
) -> Callable[[AnyServicer, Request, grpc.aio.ServicerContext], Awaitable[Response]]:
    """Check the request (`check_request`), then turn domain errors raised by a unary RPC into
    their status codes."""

    @functools.wraps(method)
    async def wrapper(self: AnyServicer, request: Request, context: grpc.aio.ServicerContext) -> Response:
        try:
            _reject_malformed(request)
            check_request(request, self.limits)
            return await method(self, request, context)
        except Exception as error:
            domain_error = _domain_error(error)
            await context.abort_with_status(to_rpc_status(domain_error, _message_or_none(request)))
            raise AssertionError("abort_with_status returned") from error

    return wrapper


def server_streaming(
    method: Callable[[AnyServicer, Request, grpc.aio.ServicerContext], AsyncIterator[Response]],
) -> Callable[[AnyServicer, Request, grpc.aio.ServicerContext], AsyncIterator[Response]]:
    """Check the request (`check_request`), then turn domain errors raised by a server-streaming
    RPC into their status codes."""

    @functools.wraps(method)
    async def wrapper(
        self: AnyServicer, request: Request, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        try:
            _reject_malformed(request)
            check_request(request, self.limits)
            async for response in method(self, request, context):
                yield response
        except Exception as error:
            domain_error = _domain_error(error)
            await context.abort_with_status(to_rpc_status(domain_error, _message_or_none(request)))

    return wrapper


def _domain_error(error: Exception) -> TimestepError:
    """`error` as a domain error; re-raises it when it is none (a bug: gRPC answers UNKNOWN)."""
    if isinstance(error, TimestepError):
        return error
    unavailable = database_unavailable(error)
    if unavailable is None:
        raise error
    log.warning("refused a call: %s", unavailable.message)
    return unavailable


def _message_or_none(request: Any) -> Message | None:
    return request if isinstance(request, Message) else None
