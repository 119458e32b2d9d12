"""Timestep: durable OpenAI Agents SDK runs as a gRPC service.

The library API below is the service's own core, public for in-process Python users.
"""

from timestep.runtime.runner import run_agent
from timestep.store.sessions import PostgresSession
from timestep.store.state_store import RunStateStore

__all__ = ["PostgresSession", "RunStateStore", "run_agent"]
