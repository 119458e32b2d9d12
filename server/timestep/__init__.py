"""Timestep: durable OpenAI Agents SDK runs as a gRPC service.

The library API below is the service's own core, public for in-process Python users.
"""

from timestep.durability.engine import configure_dbos, ensure_dbos_launched, shutdown_dbos
from timestep.durability.library import WorkflowRunResult, run_agent_workflow
from timestep.durability.steps import not_idempotent
from timestep.runtime.models import (
    ModelNotConfiguredError,
    ModelProviderError,
    MultiModelProvider,
    MultiModelProviderMap,
    OllamaModelProvider,
)
from timestep.runtime.pricing import Price, PriceTable
from timestep.runtime.runner import run_agent
from timestep.runtime.tools import web_search
from timestep.store.sessions import PostgresSession
from timestep.store.state_store import RunStateStore

__all__ = [
    "ModelNotConfiguredError",
    "ModelProviderError",
    "MultiModelProvider",
    "MultiModelProviderMap",
    "OllamaModelProvider",
    "PostgresSession",
    "Price",
    "PriceTable",
    "RunStateStore",
    "WorkflowRunResult",
    "configure_dbos",
    "ensure_dbos_launched",
    "not_idempotent",
    "run_agent",
    "run_agent_workflow",
    "shutdown_dbos",
    "web_search",
]
