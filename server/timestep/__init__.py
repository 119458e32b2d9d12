"""Timestep: durable OpenAI Agents SDK runs as a gRPC service.

The library API below is the service's own core, public for in-process Python users. Names are
imported on first use, so that `import timestep.<something>` (the command line, for one) does
not pay for loading DBOS and the Agents SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from timestep.durability.engine import configure_dbos, ensure_dbos_launched, shutdown_dbos
    from timestep.durability.library import WorkflowRunResult, run_agent_workflow
    from timestep.durability.steps import not_idempotent
    from timestep.runtime.models import (
        LocalModelProvider,
        ModelNotConfiguredError,
        ModelProviderError,
        MultiModelProvider,
        MultiModelProviderMap,
        OllamaModelProvider,
    )
    from timestep.runtime.pricing import Price, PriceTable
    from timestep.runtime.registry import RegisteredAgent
    from timestep.runtime.runner import run_agent
    from timestep.runtime.tools import web_search
    from timestep.store.sessions import PostgresSession
    from timestep.store.state_store import RunStateStore

_EXPORTS = {
    "configure_dbos": "timestep.durability.engine",
    "ensure_dbos_launched": "timestep.durability.engine",
    "shutdown_dbos": "timestep.durability.engine",
    "WorkflowRunResult": "timestep.durability.library",
    "run_agent_workflow": "timestep.durability.library",
    "not_idempotent": "timestep.durability.steps",
    "LocalModelProvider": "timestep.runtime.models",
    "ModelNotConfiguredError": "timestep.runtime.models",
    "ModelProviderError": "timestep.runtime.models",
    "MultiModelProvider": "timestep.runtime.models",
    "MultiModelProviderMap": "timestep.runtime.models",
    "OllamaModelProvider": "timestep.runtime.models",
    "Price": "timestep.runtime.pricing",
    "PriceTable": "timestep.runtime.pricing",
    "RegisteredAgent": "timestep.runtime.registry",
    "run_agent": "timestep.runtime.runner",
    "web_search": "timestep.runtime.tools",
    "PostgresSession": "timestep.store.sessions",
    "RunStateStore": "timestep.store.state_store",
}

__all__ = [
    "LocalModelProvider",
    "ModelNotConfiguredError",
    "ModelProviderError",
    "MultiModelProvider",
    "MultiModelProviderMap",
    "OllamaModelProvider",
    "PostgresSession",
    "Price",
    "PriceTable",
    "RegisteredAgent",
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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'timestep' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
