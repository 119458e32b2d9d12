"""DBOS-backed steps: a completed model or tool call is recorded and replayed, never repeated.

Tools are at-least-once: a tool that was running when its process died runs again on
recovery, unless it is marked `not_idempotent`, in which case the model is told the call may
or may not have happened instead (the start of such a tool's call is marked in
`tool_invocations` first).

Steps are preemptible: when the segment's workflow is cancelled (CancelRun, possibly through
another replica), DBOS notices within a second and aborts the model or tool call in flight,
so its result is never recorded and the run cannot move on after being cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agents import FunctionTool
from dbos import DBOS

from timestep.store.runs import RunStore

_NOT_IDEMPOTENT = "_timestep_not_idempotent"


def not_idempotent(tool: FunctionTool) -> FunctionTool:
    """Mark a tool that must not run twice: after a crash mid-call it is not run again."""
    setattr(tool, _NOT_IDEMPOTENT, True)
    return tool


def is_idempotent(tool: FunctionTool) -> bool:
    return not getattr(tool, _NOT_IDEMPOTENT, False)


class DurableSteps:
    """The StepRunner of a segment workflow."""

    def __init__(self, store: RunStore | None, run_id: str, segment: int, executor_id: str) -> None:
        # Without a store (library use) tool starts are not marked: every tool is at-least-once.
        self._store = store
        self._run_id = run_id
        self._segment = segment
        self._executor_id = executor_id

    async def model_call(self, model_name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        return await DBOS.run_step_async({"name": f"model:{model_name}", "preemptible": True}, call)

    async def tool_call(self, tool: FunctionTool, call_id: str, call: Callable[[], Awaitable[Any]]) -> Any:
        async def invoke() -> Any:
            # Only a tool that must not run twice needs its start marked (a write per call).
            first_attempt = (
                self._store is None
                or is_idempotent(tool)
                or await self._store.mark_tool_started(
                    self._run_id, self._segment, call_id, tool.name, self._executor_id
                )
            )
            if not first_attempt:
                return (
                    f"The {tool.name} call may or may not have completed: the service restarted while it "
                    "was running, and it is not safe to run it twice. Check its effect before retrying."
                )
            return await call()

        return await DBOS.run_step_async({"name": f"tool:{tool.name}", "preemptible": True}, invoke)
