"""Server reflection under grpc.reflection.v1, which current grpcurl and `buf curl` try first, as
well as v1alpha: the same answers from both, and the v1 service describes itself."""

from __future__ import annotations

from typing import Final

import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2
from timestep.app import TimestepService
from timestep_client import TimestepClient

from timestep_testing.helpers import WAIT

VERSIONS: Final = ("grpc.reflection.v1", "grpc.reflection.v1alpha")


async def ask(
    service: TimestepService, version: str, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    """One request on `version`'s reflection stream. The two versions' messages are the same on the
    wire, so v1alpha's classes encode and decode v1's."""
    async with TimestepClient(f"127.0.0.1:{service.port}") as client:
        call = client.channel.stream_stream(
            f"/{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )(iter([request]), timeout=WAIT)
        async for response in call:
            assert isinstance(response, reflection_pb2.ServerReflectionResponse)
            return response
    raise AssertionError(f"{version} reflection sent no answer")


def files(response: reflection_pb2.ServerReflectionResponse) -> list[descriptor_pb2.FileDescriptorProto]:
    assert not response.HasField("error_response"), response.error_response
    return [
        descriptor_pb2.FileDescriptorProto.FromString(encoded)
        for encoded in response.file_descriptor_response.file_descriptor_proto
    ]


@pytest.mark.parametrize("version", VERSIONS)
async def test_both_reflection_versions_list_every_service(service: TimestepService, version: str) -> None:
    response = await ask(service, version, reflection_pb2.ServerReflectionRequest(list_services=""))

    assert {entry.name for entry in response.list_services_response.service} == {
        "timestep.v1.RunService",
        "timestep.v1.AgentService",
        "timestep.v1.UsageService",
        "timestep.v1.ScheduleService",
        "timestep.v1.SessionService",
        "timestep.v1.WebhookService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }


@pytest.mark.parametrize("version", VERSIONS)
async def test_both_reflection_versions_describe_a_service_and_themselves(
    service: TimestepService, version: str
) -> None:
    def symbol(name: str) -> reflection_pb2.ServerReflectionRequest:
        return reflection_pb2.ServerReflectionRequest(file_containing_symbol=name)

    run_service = await ask(service, version, symbol("timestep.v1.RunService"))
    itself = await ask(service, version, symbol(f"{version}.ServerReflection"))

    assert "RunService" in [s.name for file in files(run_service) for s in file.service]
    [reflection_file] = files(itself)
    assert reflection_file.package == version
    [method] = reflection_file.service[0].method
    assert method.input_type == f".{version}.ServerReflectionRequest"
    assert method.output_type == f".{version}.ServerReflectionResponse"
