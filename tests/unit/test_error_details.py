"""The google.rpc details of the errors no RPC of the table in tests/e2e/test_errors.py raises."""

from __future__ import annotations

import datetime
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from timestep.api.errors import ERROR_DOMAIN, describe
from timestep.api.grpc.status import status_code_for, to_rpc_status
from timestep.errors import FailedPreconditionError, ResourceExhaustedError
from timestep_client.v1 import runs_pb2, schedules_pb2


def details(status: grpc.Status) -> list[Message]:
    """The unpacked details of the google.rpc.Status a grpc.Status carries."""
    metadata = dict(status.trailing_metadata)
    decoded = status_pb2.Status.FromString(metadata[rpc_status.GRPC_DETAILS_METADATA_KEY])
    unpacked: list[Message] = []
    for detail in decoded.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.RetryInfo,
            error_details_pb2.PreconditionFailure,
        ):
            if detail.Is(kind.DESCRIPTOR):
                message: Any = kind()
                detail.Unpack(message)
                unpacked.append(message)
    return unpacked


def test_resource_exhausted_carries_retry_info() -> None:
    error = ResourceExhaustedError(
        "Too many streams; retry later.", reason="TOO_MANY_STREAMS", retry_after_s=1.5
    )

    status = to_rpc_status(describe(error))

    assert status_code_for(describe(error)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, retry = details(status)
    assert info == error_details_pb2.ErrorInfo(reason="TOO_MANY_STREAMS", domain=ERROR_DOMAIN)
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToTimedelta() == datetime.timedelta(seconds=1.5)


def test_a_precondition_failure_names_its_own_subject_before_the_requests_run() -> None:
    request = runs_pb2.GetRunRequest(run_id="run_1")
    own = FailedPreconditionError("No schedules.", reason="SCHEDULES_NEED_DURABILITY", subject="schedules")
    of_run = FailedPreconditionError("Run run_1 is COMPLETED.", reason="RUN_FINISHED")

    [_, own_failure] = details(to_rpc_status(describe(own, request)))
    [_, run_failure] = details(to_rpc_status(describe(of_run, request)))
    [_, no_run_failure] = details(to_rpc_status(describe(of_run, schedules_pb2.GetScheduleRequest())))

    assert isinstance(own_failure, error_details_pb2.PreconditionFailure)
    assert [(v.type, v.subject) for v in own_failure.violations] == [
        ("SCHEDULES_NEED_DURABILITY", "schedules")
    ]
    assert isinstance(run_failure, error_details_pb2.PreconditionFailure)
    assert [(v.subject, v.description) for v in run_failure.violations] == [
        ("runs/run_1", "Run run_1 is COMPLETED.")
    ]
    assert isinstance(no_run_failure, error_details_pb2.PreconditionFailure)
    assert [v.subject for v in no_run_failure.violations] == [""]
