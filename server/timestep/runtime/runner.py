"""Running agents on the Agents SDK: the library's `run_agent` and the service's segment execution."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Protocol

from agents import Agent, RunConfig, RunHooks, Runner, RunResult, RunResultStreaming, RunState, Session
from agents.models.interface import ModelProvider
from agents.run_context import AgentHookContext
from agents.stream_events import StreamEvent

from timestep.changes import SegmentOutcome
from timestep.domain import Interruption as Decision
from timestep.domain import InterruptionStatus, PendingEvent, RunStatus
from timestep.errors import FailedPreconditionError
from timestep.event_types import FinalOutput, TextDelta, pending
from timestep.runtime import sdk_internals
from timestep.runtime.models.request_limits import RateLimitedProvider, RequestLimiter
from timestep.runtime.pricing import PriceTable
from timestep.runtime.providers import ModelConfig
from timestep.runtime.registry import route_through_steps
from timestep.runtime.state_sdk import export_state
from timestep.runtime.steps import (
    DirectSteps,
    StepModelProvider,
    StepRunner,
    current_delta_sink,
    current_model_call_sink,
    current_steps,
)
from timestep.runtime.translate import event_for_item, interruption_for, output_text
from timestep.runtime.usage import UsageRecorder
from timestep.settings import DEFAULT_MAX_TURNS

AgentInput = str | list[Any] | RunState[Any, Any]
StreamHandler = Callable[[StreamEvent], Awaitable[None]]


def default_run_config(
    provider: ModelProvider,
    model: str = "",
    *,
    tracing: bool = False,
    request_limiter: RequestLimiter | None = None,
) -> RunConfig:
    """A RunConfig whose model calls go to `provider` (the caller closes it); with
    `request_limiter`, each model request first waits for a slot of its provider.

    SDK tracing is off unless `tracing` (OpenTelemetry is on) or TIMESTEP_OPENAI_TRACING=1 (the
    SDK's own export to OpenAI's servers).
    """
    return RunConfig(
        model=model or None,
        model_provider=RateLimitedProvider(provider, request_limiter) if request_limiter else provider,
        tracing_disabled=not (tracing or openai_tracing()),
    )


@asynccontextmanager
async def run_config_or_default(run_config: RunConfig | None) -> AsyncIterator[RunConfig]:
    """`run_config`, else a default one whose model provider is closed on exit (with the
    connections its model calls opened)."""
    if run_config is not None:
        yield run_config
        return
    provider = ModelConfig.from_env().provider()
    try:
        yield default_run_config(provider)
    finally:
        await provider.aclose()


def openai_tracing() -> bool:
    """Whether the Agents SDK exports its traces to OpenAI (TIMESTEP_OPENAI_TRACING=1)."""
    return os.environ.get("TIMESTEP_OPENAI_TRACING") == "1"


async def run_agent(
    agent: Agent[Any],
    input_or_state: AgentInput,
    session: Session | None = None,
    stream: bool = False,
    *,
    run_config: RunConfig | None = None,
    max_turns: int = DEFAULT_MAX_TURNS,
    on_event: StreamHandler | None = None,
    hooks: RunHooks[Any] | None = None,
) -> RunResult | RunResultStreaming:
    """Run `agent` on new input or on a RunState to resume, until it finishes or pauses.

    With `stream=True` the model is called in streaming mode and every SDK stream event is
    passed to `on_event` as it happens; the returned result is complete either way, and its
    `interruptions` list the tool calls waiting for approval. `hooks` receive the SDK's
    lifecycle callbacks (e.g. each model call's usage).
    """
    async with run_config_or_default(run_config) as config:
        if not stream:
            return await Runner.run(
                agent, input_or_state, session=session, run_config=config, max_turns=max_turns, hooks=hooks
            )
        result = Runner.run_streamed(
            agent, input_or_state, session=session, run_config=config, max_turns=max_turns, hooks=hooks
        )
        async for event in result.stream_events():
            if on_event is not None:
                await on_event(event)
        return result


class SegmentListener(Protocol):
    """Receives what happens during a segment, in order."""

    async def on_item(self, event: PendingEvent) -> None: ...

    async def on_text_delta(self, delta: TextDelta) -> None: ...


async def execute_segment(
    agent: Agent[Any],
    input_or_state: AgentInput,
    *,
    session: Session | None,
    run_config: RunConfig,
    listener: SegmentListener,
    steps: StepRunner | None = None,
    max_turns: int = DEFAULT_MAX_TURNS,
    recorder: UsageRecorder | None = None,
) -> SegmentOutcome:
    """Run one segment (to the end or to the next interruptions), streaming as it goes.

    Model and tool calls go through `steps` (see `timestep.runtime.steps`): every tool of every
    agent the segment can reach is routed there. Text deltas reach `listener` from the model
    step as the provider streams them. Each model call is recorded in `recorder` as it completes
    (default: priced with the built-in price table); a caller that passes its own recorder
    keeps the calls made before a failure.
    """
    recorder = recorder or UsageRecorder(run_config, PriceTable())
    starting = agent
    if isinstance(input_or_state, RunState):
        starting = sdk_internals.current_agent(input_or_state) or agent
    route_through_steps([agent, starting])
    current_agent = [starting.name]

    async def on_delta(delta: str, item_id: str) -> None:
        await listener.on_text_delta(TextDelta(current_agent[0], delta, item_id))

    async def on_event(event: StreamEvent) -> None:
        if event.type == "run_item_stream_event":
            item_event = event_for_item(event.item)
            if item_event is not None:
                await listener.on_item(item_event)
        elif event.type == "agent_updated_stream_event":
            current_agent[0] = event.new_agent.name

    steps_token = current_steps.set(steps or DirectSteps())
    sink_token = current_delta_sink.set(on_delta)
    calls_token = current_model_call_sink.set(recorder.record)
    try:
        result = await run_agent(
            agent,
            input_or_state,
            session,
            stream=True,
            run_config=replace(run_config, model_provider=StepModelProvider(run_config.model_provider)),
            max_turns=max_turns,
            on_event=on_event,
            hooks=_SegmentHooks(recorder),
        )
    finally:
        current_model_call_sink.reset(calls_token)
        current_delta_sink.reset(sink_token)
        current_steps.reset(steps_token)
    usage = recorder.total()
    if result.interruptions:
        return SegmentOutcome(
            RunStatus.INTERRUPTED,
            result.last_agent.name,
            usage,
            snapshot=export_state(result.to_state()).snapshot(),
            interruptions=[interruption_for(item) for item in result.interruptions],
            model_calls=recorder.calls,
        )
    final_output = output_text(result.final_output)
    return SegmentOutcome(
        RunStatus.COMPLETED,
        result.last_agent.name,
        usage,
        final_output=final_output,
        events=[pending(FinalOutput(result.last_agent.name, final_output))],
        model_calls=recorder.calls,
    )


class _SegmentHooks(RunHooks[Any]):
    """An agent taking its turn has its tools routed through steps (also one that a `Handoff`
    made by hand picked as it ran) and is who the turn's model calls are attributed to."""

    def __init__(self, usage: UsageRecorder) -> None:
        self._usage = usage

    async def on_agent_start(self, context: AgentHookContext[Any], agent: Agent[Any]) -> None:
        route_through_steps([agent])
        self._usage.agent_started(agent)


def apply_decisions(
    state: RunState[Any, Any], decisions: list[Decision], *, allow_pending: bool = False
) -> None:
    """Approve or reject each pending tool call of `state` as recorded, matched by call id.

    Undecided calls are an error unless `allow_pending` (exporting a partly decided state).
    """
    by_call_id = {d.call_id: d for d in decisions}
    for item in state.get_interruptions():
        decision = by_call_id.get(item.call_id or "")
        if decision is None or decision.status is InterruptionStatus.PENDING:
            if allow_pending:
                continue
            raise FailedPreconditionError(
                f"The tool call {item.call_id} ({item.tool_name}) has no decision yet; approve or reject it "
                "before resuming.",
                reason="INTERRUPTIONS_PENDING",
            )
        if decision.status is InterruptionStatus.APPROVED:
            state.approve(item, always_approve=decision.always)
        else:
            state.reject(item, always_reject=decision.always, rejection_message=decision.message or None)
