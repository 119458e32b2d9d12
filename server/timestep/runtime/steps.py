"""Steps: the points where a segment's work can be recorded and replayed.

Every model call and every function-tool call of a segment goes through the `StepRunner` in
`current_steps`. `DirectSteps` just runs them; the durable runner (`timestep.durability`)
records each completed call so that a recovered segment replays recorded results instead of
calling the model or the tool again. The runtime itself knows nothing of how steps are kept.

Streaming and recording meet in `StepModel`: the SDK always gets the *completed* model
response from the step (that is what can be recorded), while the step streams from the
provider and hands each text delta to a sink on the side, so tokens still flow live. Each
completed model call, made or replayed, is also reported to `current_model_call_sink`: that is
how a segment counts its usage, whatever becomes of the segment afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from agents import FunctionTool, Model, ModelBehaviorError, ModelProvider, ModelResponse, RunContextWrapper
from agents.tool_context import ToolContext
from openai.types.responses import Response, ResponseCompletedEvent

from timestep.domain import RunErrorCode
from timestep.runtime.observers import observed
from timestep.runtime.secrets import scrub_exception

T = TypeVar("T")

DeltaSink = Callable[[str, str], Awaitable[None]]  # (text delta, output item id)


class SegmentSupersededError(Exception):
    """Raised by a StepRunner when the run stopped running this segment (it was cancelled,
    possibly through another replica) while one of its calls was due or in flight."""


class StepReplayError(Exception):
    """Raised by a StepRunner that cannot replay a recorded call; the run fails with `code`."""

    def __init__(self, code: RunErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StepRunner(Protocol):
    async def model_call(self, model_name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run one model call (returns a `Response` or a `ModelResponse`)."""
        ...

    async def tool_call(self, tool: FunctionTool, call_id: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run one function-tool call."""
        ...


class SegmentSteps(StepRunner, Protocol):
    """The StepRunner of a service segment."""

    async def prepare(self) -> None:
        """Read what an earlier execution of the segment recorded; the segment awaits it (with
        its own first read) before its first step."""
        ...


class DirectSteps:
    """Runs every step as it comes; nothing is recorded."""

    async def prepare(self) -> None:
        return

    async def model_call(self, model_name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        return await call()

    async def tool_call(self, tool: FunctionTool, call_id: str, call: Callable[[], Awaitable[Any]]) -> Any:
        return await call()


_DIRECT = DirectSteps()  # stateless, so one instance can be the default everywhere
current_steps: ContextVar[StepRunner] = ContextVar("timestep_current_steps", default=_DIRECT)


async def _no_delta(delta: str, item_id: str) -> None:
    return None


current_delta_sink: ContextVar[DeltaSink] = ContextVar("timestep_current_delta_sink", default=_no_delta)

# Told of every completed model call (model name as asked for, if any; its response), also of one
# replayed from a record: the calls a segment made, whatever becomes of the segment after them.
ModelCallSink = Callable[[str | None, Response | ModelResponse], None]


def _no_model_call(model_name: str | None, response: Response | ModelResponse) -> None:
    return None


current_model_call_sink: ContextVar[ModelCallSink] = ContextVar(
    "timestep_current_model_call_sink", default=_no_model_call
)


async def _without_secrets(call: Awaitable[T]) -> T:
    """Await a provider call; an error it raises (which may quote our key) is recorded and
    logged without the service's keys."""
    try:
        return await call
    except Exception as error:
        scrub_exception(error)
        raise


class StepModel(Model):
    """A model whose calls are steps: complete responses in, text deltas out on the side."""

    def __init__(self, inner: Model, model_name: str | None) -> None:
        self._inner = inner
        self._model_name = model_name
        self._name = model_name or "default"

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        response: ModelResponse = await current_steps.get().model_call(
            self._name,
            observed(self._name, lambda: _without_secrets(self._inner.get_response(*args, **kwargs))),
        )
        current_model_call_sink.get()(self._model_name, response)
        return response

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        on_delta = current_delta_sink.get()

        async def streamed_call() -> Response:
            completed: Response | None = None
            finished_items: list[Any] = []
            async for event in self._inner.stream_response(*args, **kwargs):
                if event.type == "response.output_text.delta":
                    await on_delta(event.delta, event.item_id)
                elif event.type == "response.output_item.done":
                    finished_items.append(event.item)
                elif event.type == "response.completed":
                    completed = event.response
            if completed is None:
                raise ModelBehaviorError(f"The {self._name} stream ended without a completed response.")
            if not completed.output:  # some backends only report items as they finish
                completed.output = finished_items
            return completed

        response: Response = await current_steps.get().model_call(
            self._name, observed(self._name, lambda: _without_secrets(streamed_call()))
        )
        current_model_call_sink.get()(self._model_name, response)
        yield ResponseCompletedEvent(type="response.completed", response=response, sequence_number=0)

    async def close(self) -> None:
        await self._inner.close()


class StepModelProvider(ModelProvider):
    """Wraps every model of `inner` in a `StepModel`."""

    def __init__(self, inner: ModelProvider) -> None:
        self._inner = inner

    def get_model(self, model_name: str | None) -> Model:
        return StepModel(self._inner.get_model(model_name), model_name)

    async def aclose(self) -> None:
        await self._inner.aclose()


def route_tools_through_steps(tool: FunctionTool) -> None:
    """Make `tool`'s calls go through the current StepRunner (once per tool object)."""
    if getattr(tool, "_timestep_steps", False):
        return
    invoke = tool.on_invoke_tool

    async def invoke_as_step(context: ToolContext[Any], arguments: str) -> Any:
        return await current_steps.get().tool_call(
            tool, context.tool_call_id, lambda: invoke(context, arguments)
        )

    tool.on_invoke_tool = invoke_as_step
    tool._timestep_steps = True  # type: ignore[attr-defined]


__all__ = [
    "DeltaSink",
    "DirectSteps",
    "ModelCallSink",
    "RunContextWrapper",
    "SegmentSteps",
    "SegmentSupersededError",
    "StepModel",
    "StepModelProvider",
    "StepReplayError",
    "StepRunner",
    "current_delta_sink",
    "current_model_call_sink",
    "current_steps",
    "route_tools_through_steps",
]
