"""`run_agent_workflow`: the library's durable run for in-process Python users.

Workflow arguments must be plain data, so the agent is registered in this process under its
name and the workflow receives the name; the input is input items or RunState JSON. The
result is plain data too (`WorkflowRunResult`), so calling again with the same workflow id
returns the recorded result instead of running again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents import Agent, RunConfig, RunState, Session
from dbos import DBOS, SetWorkflowID

from timestep.domain import NewInterruption, PendingEvent
from timestep.durability.steps import DbosSteps
from timestep.event_types import TextDelta
from timestep.runtime.runner import execute_segment, run_config_or_default
from timestep.runtime.state_sdk import export_state, load_state
from timestep.store.sessions import PostgresSession

_agents: dict[str, tuple[Agent[Any], RunConfig | None]] = {}


@dataclass(frozen=True)
class WorkflowRunResult:
    final_output: str
    last_agent: str
    # Tool calls awaiting approval; resume with `RunState.from_string(agent, state_json)`.
    interruptions: list[NewInterruption]
    state_json: str | None


class _Silent:
    async def on_item(self, event: PendingEvent) -> None:
        return None

    async def on_text_delta(self, delta: TextDelta) -> None:
        return None


@DBOS.workflow(name="timestep.run_agent")
async def _run_agent(
    agent_name: str, input_or_state_json: Any, is_state: bool, session_id: str
) -> WorkflowRunResult:
    agent, run_config = _agents[agent_name]
    workflow_id = DBOS.workflow_id or agent_name
    state_or_input = await load_state(agent, input_or_state_json) if is_state else input_or_state_json
    async with run_config_or_default(run_config) as config:
        result = await execute_segment(
            agent,
            state_or_input,
            session=PostgresSession(session_id, replay_key=workflow_id) if session_id else None,
            run_config=config,
            listener=_Silent(),
            steps=DbosSteps(),
        )
    return WorkflowRunResult(
        result.final_output,
        result.current_agent,
        list(result.interruptions),
        result.snapshot.state_json if result.snapshot else None,
    )


async def run_agent_workflow(
    agent: Agent[Any],
    input_items: str | list[Any] | RunState[Any, Any],
    session: Session | None = None,
    workflow_id: str | None = None,
    *,
    run_config: RunConfig | None = None,
) -> WorkflowRunResult:
    """Run `agent` as a DBOS workflow that survives crashes (`configure_dbos()` and
    `ensure_dbos_launched()` first). `workflow_id` is the idempotency key. The session, if any,
    is continued by its `session_id` in the service's database."""
    _agents[agent.name] = (agent, run_config)
    is_state = isinstance(input_items, RunState)
    payload = export_state(input_items).text if isinstance(input_items, RunState) else input_items
    session_id = str(getattr(session, "session_id", "")) if session is not None else ""
    if workflow_id is None:
        return await _run_agent(agent.name, payload, is_state, session_id)
    with SetWorkflowID(workflow_id):
        return await _run_agent(agent.name, payload, is_state, session_id)
