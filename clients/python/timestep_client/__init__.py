"""Python client for the Timestep gRPC service: generated stubs (`timestep_client.v1`) and
`TimestepClient`, a small typed async wrapper."""

from timestep_client.client import TimestepClient, TlsOptions, bearer_key_interceptors
from timestep_client.v1.agents_pb2 import Agent
from timestep_client.v1.runs_pb2 import (
    Interruption,
    InterruptionStatus,
    Run,
    RunEvent,
    RunStatus,
    StateFormat,
)

__all__ = [
    "Agent",
    "Interruption",
    "InterruptionStatus",
    "Run",
    "RunEvent",
    "RunStatus",
    "StateFormat",
    "TimestepClient",
    "TlsOptions",
    "bearer_key_interceptors",
]
