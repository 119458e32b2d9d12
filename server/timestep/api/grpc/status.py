"""Error descriptions (`timestep.api.errors`) as gRPC statuses: the code, the message, and the
details packed into a google.rpc.Status in the `grpc-status-details-bin` trailer."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2
from grpc_status import rpc_status

from timestep.api.errors import ErrorDescription


def status_code_for(description: ErrorDescription) -> grpc.StatusCode:
    code: grpc.StatusCode = grpc.StatusCode[description.code_name]
    return code


def to_rpc_status(description: ErrorDescription) -> grpc.Status:
    packed = []
    for detail in description.details:
        wrapped = any_pb2.Any()
        wrapped.Pack(detail)
        packed.append(wrapped)
    return rpc_status.to_status(
        status_pb2.Status(code=description.code, message=description.message, details=packed)
    )
