"""Domain errors → gRPC status codes, with google.rpc details (ErrorInfo, BadRequest).

| domain error              | gRPC code           |
|---------------------------|---------------------|
| NotFoundError             | NOT_FOUND           |
| InvalidArgumentError      | INVALID_ARGUMENT    |
| FailedPreconditionError   | FAILED_PRECONDITION |
| AlreadyExistsError        | ALREADY_EXISTS      |
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from timestep.api.convert import reject_nul_characters
from timestep.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    TimestepError,
)

log = logging.getLogger(__name__)

ERROR_DOMAIN = "timestep.dev"

_CODES: list[tuple[type[TimestepError], grpc.StatusCode, int]] = [
    (NotFoundError, grpc.StatusCode.NOT_FOUND, code_pb2.NOT_FOUND),
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION, code_pb2.FAILED_PRECONDITION),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS, code_pb2.ALREADY_EXISTS),
]


def status_code_for(error: TimestepError) -> grpc.StatusCode:
    return next(code for kind, code, _ in _CODES if isinstance(error, kind))


def to_rpc_status(error: TimestepError) -> grpc.Status:
    numeric = next(number for kind, _, number in _CODES if isinstance(error, kind))
    details = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=error.reason or type(error).__name__, domain=ERROR_DOMAIN))
    details.append(info)
    if isinstance(error, InvalidArgumentError) and error.field:
        bad_request = any_pb2.Any()
        bad_request.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.message)
                ]
            )
        )
        details.append(bad_request)
    return rpc_status.to_status(status_pb2.Status(code=numeric, message=error.message, details=details))


Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response")
Servicer = TypeVar("Servicer")


def unary(
    method: Callable[[Servicer, Request, grpc.aio.ServicerContext], Awaitable[Response]],
) -> Callable[[Servicer, Request, grpc.aio.ServicerContext], Awaitable[Response]]:
    """Turn domain errors raised by a unary RPC into their status codes."""

    @functools.wraps(method)
    async def wrapper(self: Servicer, request: Request, context: grpc.aio.ServicerContext) -> Response:
        try:
            reject_nul_characters(request)
            return await method(self, request, context)
        except TimestepError as error:
            await context.abort_with_status(to_rpc_status(error))
            raise AssertionError("abort_with_status returned") from error

    return wrapper


def server_streaming(
    method: Callable[[Servicer, Request, grpc.aio.ServicerContext], AsyncIterator[Response]],
) -> Callable[[Servicer, Request, grpc.aio.ServicerContext], AsyncIterator[Response]]:
    """Turn domain errors raised by a server-streaming RPC into their status codes."""

    @functools.wraps(method)
    async def wrapper(
        self: Servicer, request: Request, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        try:
            reject_nul_characters(request)
            async for response in method(self, request, context):
                yield response
        except TimestepError as error:
            await context.abort_with_status(to_rpc_status(error))

    return wrapper
