"""Python client for the Timestep gRPC service: generated stubs (`timestep_client.v1`) and
`TimestepClient`, a small typed async wrapper."""

from timestep_client.client import TimestepClient, TlsOptions, bearer_key_interceptors
from timestep_client.v1.agents_pb2 import Agent
from timestep_client.v1.runs_pb2 import (
    Interruption,
    InterruptionStatus,
    MultitaskStrategy,
    Run,
    RunEvent,
    RunStatus,
    StateFormat,
)
from timestep_client.v1.sessions_pb2 import Session, SessionItem

__all__ = [
    "Agent",
    "Interruption",
    "InterruptionStatus",
    "MultitaskStrategy",
    "Run",
    "RunEvent",
    "RunStatus",
    "Session",
    "SessionItem",
    "StateFormat",
    "TimestepClient",
    "TlsOptions",
    "bearer_key_interceptors",
]
