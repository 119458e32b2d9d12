"""`timestep health`: the standard gRPC health check, for container health checks and scripts."""

from __future__ import annotations

import argparse

from grpc_health.v1 import health_pb2, health_pb2_grpc
from timestep_client import TimestepClient

from timestep.commands.output import OK, UNAVAILABLE, Output


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    health = commands.add_parser(
        "health",
        help="exit 0 if the service is SERVING, 6 if it is not (or draining, or unreachable)",
        parents=[common],
    )
    health.add_argument(
        "--service", default="", help="one service's status, e.g. timestep.v1.RunService (default: overall)"
    )
    health.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default: %(default)s)")
    health.set_defaults(handler=check_health)


async def check_health(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    answer = await health_pb2_grpc.HealthStub(client.channel).Check(
        health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
    )
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    output.result(answer, status)
    return OK if answer.status == health_pb2.HealthCheckResponse.SERVING else UNAVAILABLE
