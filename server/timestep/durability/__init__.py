"""Durable execution on DBOS: each run segment is a workflow, model and tool calls are steps.

This package wraps `timestep.runs`: nothing above `runs` imports DBOS, and nothing below it
knows a workflow exists (the runtime sees only a `StepRunner`).
"""

from timestep.durability.engine import DurableEngine, configure_dbos, ensure_dbos_launched, shutdown_dbos
from timestep.durability.library import run_agent_workflow
from timestep.durability.steps import not_idempotent

__all__ = [
    "DurableEngine",
    "configure_dbos",
    "ensure_dbos_launched",
    "not_idempotent",
    "run_agent_workflow",
    "shutdown_dbos",
]
