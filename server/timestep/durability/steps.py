"""Durable steps: a completed model or tool call is recorded and replayed, never repeated.

The service records a segment's calls in its own step journal (`step_journal`, one INSERT per
call on its connection pool, see `JournaledSteps`; entries are JSON, see `journal`); a recovered
segment makes the same calls in the same order and gets the recorded results back. The
library's `run_agent_workflow`, which has no store, records them as DBOS steps (`DbosSteps`).

Tools are at-least-once: a tool that was running when its process died runs again on
recovery, unless it is marked `not_idempotent`, in which case the model is told the call may
or may not have happened instead (the start of such a tool's call is marked in
`tool_invocations` first).

Steps are preemptible: while a call is in flight the journal checks every second that the run
is still RUNNING this segment, and a tool call checks before it starts. A run cancelled through
another replica thus stops its model or tool call within a second, its result is never recorded
and the run cannot move on after being cancelled. (CancelRun on the replica executing the
segment cancels it at once; see `DurableEngine.stop`.)
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Final

from agents import FunctionTool
from dbos import DBOS

from timestep.domain import RunErrorCode
from timestep.durability.journal import (
    Entry,
    decode_model_result,
    decode_tool_output,
    encode_model_result,
    encode_tool_output,
)
from timestep.durability.journal_store import JournalStore, RecordedStep
from timestep.errors import DatabaseUnavailableError
from timestep.runtime.steps import SegmentSupersededError, StepReplayError
from timestep.store.retry import PATIENCE_S

log = logging.getLogger(__name__)

_NOT_IDEMPOTENT = "_timestep_not_idempotent"
# How often an in-flight call checks that its run was not cancelled elsewhere.
SUPERSEDED_CHECK_INTERVAL_S: Final = 1.0


def not_idempotent(tool: FunctionTool) -> FunctionTool:
    """Mark a tool that must not run twice: after a crash mid-call it is not run again."""
    setattr(tool, _NOT_IDEMPOTENT, True)
    return tool


def is_idempotent(tool: FunctionTool) -> bool:
    return not getattr(tool, _NOT_IDEMPOTENT, False)


class NondeterministicReplayError(StepReplayError):
    """A recovered segment asked for a different call than the one it recorded at that point."""

    def __init__(self, message: str) -> None:
        super().__init__(RunErrorCode.NONDETERMINISTIC_REPLAY, message)


# The step a call is made inside of ("" at the top of a segment): an agent used as a tool runs
# its own model and tool calls inside the tool's call.
_enclosing_step: ContextVar[str] = ContextVar("timestep_enclosing_step", default="")


class JournaledSteps:
    """The StepRunner of a service segment: calls are numbered in the order the segment makes
    them, and each completed call is one row of the step journal.

    A call made inside another call (the run of an agent used as a tool) is numbered within
    that call ("4.1", "4.2"): when the enclosing call is replayed its inner calls are not made,
    and the numbers of the calls after it stay the same.
    """

    def __init__(self, store: JournalStore, run_id: str, segment: int, executor_id: str) -> None:
        self._store = store
        self._run_id = run_id
        self._segment = segment
        self._executor_id = executor_id
        self._recorded: dict[str, RecordedStep] = {}
        # The last number given inside each enclosing step.
        self._numbers: dict[str, int] = {}

    async def prepare(self) -> None:
        self._recorded = await self._store.recorded_steps(self._run_id, self._segment)

    async def model_call(self, model_name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        return await self._step(
            f"model:{model_name}", call, encode_model_result, decode_model_result, check_first=False
        )

    async def tool_call(self, tool: FunctionTool, call_id: str, call: Callable[[], Awaitable[Any]]) -> Any:
        async def invoke() -> Any:
            # Only a tool that must not run twice needs its start marked (a write per call).
            first_attempt = is_idempotent(tool) or await self._store.mark_tool_started(
                self._run_id, self._segment, call_id, tool.name, self._executor_id, uuid.uuid4().hex
            )
            return await call() if first_attempt else _maybe_completed(tool)

        # A tool acts on the world: it does not start for a run cancelled meanwhile.
        return await self._step(
            f"tool:{tool.name}",
            invoke,
            lambda result: encode_tool_output(tool, result),
            lambda entry: decode_tool_output(tool, entry),
            check_first=True,
        )

    async def _step(
        self,
        name: str,
        call: Callable[[], Awaitable[Any]],
        encode: Callable[[Any], Entry],
        decode: Callable[[Entry], Any],
        *,
        check_first: bool,
    ) -> Any:
        # Numbered before the first await, so calls the SDK starts together (parallel tool
        # calls) get their numbers in the order it starts them, on every execution.
        enclosing = _enclosing_step.get()
        number = self._numbers.get(enclosing, 0) + 1
        self._numbers[enclosing] = number
        step = f"{enclosing}.{number}" if enclosing else str(number)
        recorded = self._recorded.get(step)
        if recorded is None:
            if check_first:
                await self._raise_if_superseded()
            try:
                result = await self._preemptible(step, call)
            except BaseException:
                # A failed attempt leaves no trace, so a retry of it (the SDK's model retries)
                # gets the same number on every execution. Only the latest number is given back:
                # calls started with it (parallel tools) keep theirs.
                if self._numbers[enclosing] == number:
                    self._numbers[enclosing] = number - 1
                raise
            fresh = RecordedStep(name, encode(result))
            recorded = await self._store.record_step(self._run_id, self._segment, step, fresh)
            if recorded is fresh:
                return result
        if recorded.name != name:
            raise NondeterministicReplayError(
                f"Run {self._run_id} segment {self._segment} recorded {recorded.name!r} as call "
                f"{step}, but its recovery asked for {name!r}; the agent changed since."
            )
        return decode(recorded.entry)

    async def _preemptible(self, step: str, call: Callable[[], Awaitable[Any]]) -> Any:
        token = _enclosing_step.set(step)  # the call's task starts with a copy of this context
        try:
            running = asyncio.ensure_future(call())
        finally:
            _enclosing_step.reset(token)
        try:
            while True:
                done, _ = await asyncio.wait({running}, timeout=SUPERSEDED_CHECK_INTERVAL_S)
                if done:
                    return running.result()
                # The call in flight is not held up by the database being away.
                await self._raise_if_superseded(wait_for_database=False)
        finally:
            if not running.done():  # superseded, or this segment itself was cancelled
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

    async def _raise_if_superseded(self, *, wait_for_database: bool = True) -> None:
        try:
            superseded = await self._store.segment_superseded(
                self._run_id, self._segment, patience_s=PATIENCE_S if wait_for_database else 0.0
            )
        except DatabaseUnavailableError as error:
            if wait_for_database:
                raise
            log.warning("run %s: cannot check for cancellation now (%s)", self._run_id, error)
            return
        if superseded:
            raise SegmentSupersededError(
                f"Run {self._run_id} is no longer running segment {self._segment} (it was cancelled)."
            )


class DbosSteps:
    """The StepRunner of the library's `run_agent_workflow`: every call is a DBOS step, and
    every tool is at-least-once. A step's result is kept as its journal entry (plain JSON), so
    DBOS records any result; the first execution gets back what a replay would."""

    async def model_call(self, model_name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        async def recorded() -> Entry:
            return encode_model_result(await call())

        return decode_model_result(await _dbos_step(f"model:{model_name}", recorded))

    async def tool_call(self, tool: FunctionTool, call_id: str, call: Callable[[], Awaitable[Any]]) -> Any:
        async def recorded() -> Entry:
            return encode_tool_output(tool, await call())

        return decode_tool_output(tool, await _dbos_step(f"tool:{tool.name}", recorded))


async def _dbos_step(name: str, call: Callable[[], Awaitable[Entry]]) -> Entry:
    async def step() -> Entry:  # DBOS preempts only steps it sees as coroutine functions
        return await call()

    return await DBOS.run_step_async({"name": name, "preemptible": True}, step)


def _maybe_completed(tool: FunctionTool) -> str:
    return (
        f"The {tool.name} call may or may not have completed: the service restarted while it "
        "was running, and it is not safe to run it twice. Check its effect before retrying."
    )
