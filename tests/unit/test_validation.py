"""The request checks every RPC gets: a cap for every string field of every request, counted
in the unit each cap names."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import Descriptor
from timestep.api.validation import check_request, uncapped_fields
from timestep.errors import InvalidArgumentError
from timestep.settings import Limits
from timestep_client.v1 import agents_pb2, runs_pb2, schedules_pb2, sessions_pb2, usage_pb2, webhooks_pb2

REQUEST_TYPES = [
    method.input_type
    for module in (runs_pb2, agents_pb2, schedules_pb2, sessions_pb2, usage_pb2, webhooks_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
SMALL = Limits(max_text_bytes=8, max_input_bytes=8)


@pytest.mark.parametrize("request_type", REQUEST_TYPES, ids=[t.full_name for t in REQUEST_TYPES])
def test_every_string_field_of_every_request_has_a_cap(request_type: Descriptor) -> None:
    assert uncapped_fields(request_type) == [], "add the field to timestep.api.validation.CAPS"


def test_text_is_capped_in_utf8_bytes_and_ids_in_characters() -> None:
    check_request(runs_pb2.CancelRunRequest(run_id="r" * 200, reason="éééé"), SMALL)  # 8 bytes
    with pytest.raises(InvalidArgumentError) as caught:
        check_request(runs_pb2.CancelRunRequest(run_id="r", reason="ééééx"), SMALL)
    assert (caught.value.field, caught.value.reason) == ("reason", "FIELD_TOO_LONG")
    assert caught.value.message == "reason is 9 bytes; at most 8 are allowed. Shorten it."
    with pytest.raises(InvalidArgumentError) as caught:
        check_request(runs_pb2.GetRunRequest(run_id="é" * 201), SMALL)
    assert caught.value.message == "run_id is longer than 200 characters."


def test_a_schedules_input_has_its_own_cap() -> None:
    check_request(schedules_pb2.CreateScheduleRequest(input="x" * 1000), SMALL)
    with pytest.raises(InvalidArgumentError):
        check_request(runs_pb2.CreateRunRequest(input="x" * 9), SMALL)


def test_metadata_keys_are_capped_and_must_not_be_empty() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        check_request(runs_pb2.CreateRunRequest(metadata={"k" * 129: "v"}), SMALL)
    assert (caught.value.field, caught.value.reason) == ("metadata", "FIELD_TOO_LONG")
    with pytest.raises(InvalidArgumentError) as caught:
        check_request(runs_pb2.CreateRunRequest(metadata={"": "v"}), SMALL)
    assert caught.value.reason == "INVALID_ARGUMENT"
