"""The grpc.aio server: our services plus standard health checking and server reflection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from timestep_client.v1 import agents_pb2, runs_pb2, schedules_pb2, sessions_pb2, usage_pb2, webhooks_pb2

from timestep.api.grpc.reflection import enable_reflection
from timestep.api.grpc.servicers import generic_handler
from timestep.api.handlers import Service
from timestep.settings import DEFAULT_KEEPALIVE_TIME_MS, DEFAULT_KEEPALIVE_TIMEOUT_MS, Limits

SERVICES = (
    runs_pb2.DESCRIPTOR.services_by_name["RunService"],
    agents_pb2.DESCRIPTOR.services_by_name["AgentService"],
    usage_pb2.DESCRIPTOR.services_by_name["UsageService"],
    schedules_pb2.DESCRIPTOR.services_by_name["ScheduleService"],
    sessions_pb2.DESCRIPTOR.services_by_name["SessionService"],
    webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"],
)
SERVICE_NAMES = tuple(service.full_name for service in SERVICES)
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"]


# Keepalive: ping an idle connection every `keepalive_time_ms` and drop it if the ping is not
# answered within `keepalive_timeout_ms` (finds dead clients and keeps NAT/load-balancer
# mappings alive); accept client pings down to every 10 s, also on connections with no call.
MIN_CLIENT_PING_INTERVAL_MS = 10_000
DEFAULT_LIMITS = Limits()


def server_options(
    keepalive_time_ms: int = DEFAULT_KEEPALIVE_TIME_MS,
    keepalive_timeout_ms: int = DEFAULT_KEEPALIVE_TIMEOUT_MS,
    limits: Limits = DEFAULT_LIMITS,
) -> list[tuple[str, int]]:
    return [
        ("grpc.keepalive_time_ms", keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive_timeout_ms),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        # Transport limits, enforced by gRPC before a request reaches a handler.
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        # gRPC rejects metadata between the soft and the hard limit only at random: make them one.
        ("grpc.max_metadata_size", limits.max_metadata_bytes),
        ("grpc.absolute_max_metadata_size", limits.max_metadata_bytes),
        ("grpc.max_concurrent_streams", limits.max_concurrent_streams),
    ]


def add_services(
    server: Any, services: Sequence[Service], health: health_aio.HealthServicer, limits: Limits
) -> None:
    """Register `services` (each through the generic gRPC adapter) and health checking on
    `server`: a grpc server, or anything that collects method handlers as one (the HTTP port's,
    `timestep.api.http`)."""
    server.add_generic_rpc_handlers([generic_handler(service, limits) for service in services])
    health_pb2_grpc.add_HealthServicer_to_server(health, server)


async def build_server(
    services: Sequence[Service],
    health: health_aio.HealthServicer,
    address: str,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    options: Sequence[tuple[str, int]] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A started server of `services` bound to `address` (TLS with `credentials`, else plaintext), whose
    `health` turns SERVING once it serves; returns it and the bound port."""
    server = grpc.aio.server(
        interceptors=list(interceptors), options=list(options if options is not None else server_options())
    )
    add_services(server, services, health, limits)
    enable_reflection((*SERVICE_NAMES, HEALTH_SERVICE.full_name), server)
    port = _bind(
        server, address, credentials, f"could not bind {address}; is another process using the port?"
    )
    await server.start()
    await set_health(health, health_pb2.HealthCheckResponse.SERVING)
    return server, port


async def start_health_server(health: health_aio.HealthServicer, address: str) -> tuple[grpc.aio.Server, int]:
    """A plaintext server of the health service alone, answering what `health` says (so it turns
    NOT_SERVING with the main port while draining): a container health check or a Kubernetes gRPC
    probe needs neither the main port's TLS client certificate nor an API key. It serves no data."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = _bind(
        server, address, None, f"could not bind the health port {address}; is another process using it?"
    )
    await server.start()
    return server, port


def _bind(
    server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None, failure: str
) -> int:
    """The port bound at `address`; OSError(`failure`) if it cannot be (gRPC fails with port 0
    or a RuntimeError, depending on its version)."""
    try:
        port: int = (
            server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        )
    except RuntimeError as error:
        raise OSError(failure) from error
    if port == 0:
        raise OSError(failure)
    return port


async def set_health(
    health: health_aio.HealthServicer, status: health_pb2.HealthCheckResponse.ServingStatus
) -> None:
    """Report `status` overall and for every service (for load balancers and Watch callers)."""
    for name in ("", *SERVICE_NAMES):
        await health.set(name, status)


async def set_not_serving(health: health_aio.HealthServicer) -> None:
    await set_health(health, health_pb2.HealthCheckResponse.NOT_SERVING)
