"""Running agents on the Agents SDK: the library's `run_agent` and the service's segment execution."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agents import Agent, RunConfig, Runner, RunResult, RunResultStreaming, RunState, Session
from agents.stream_events import StreamEvent

from timestep.domain import Interruption as Decision
from timestep.domain import InterruptionStatus, NewInterruption, PendingEvent, Usage
from timestep.errors import FailedPreconditionError
from timestep.runtime.providers import ModelConfig
from timestep.runtime.translate import event_for_item, interruption_for, output_text, text_delta

DEFAULT_MAX_TURNS = 10

AgentInput = str | list[Any] | RunState[Any, Any]
StreamHandler = Callable[[StreamEvent], Awaitable[None]]


def default_run_config(model_config: ModelConfig | None = None, model: str = "") -> RunConfig:
    """A RunConfig using the environment's model settings.

    SDK tracing exports to OpenAI's servers, so it is off unless TIMESTEP_OPENAI_TRACING=1.
    """
    return RunConfig(
        model=model or None,
        model_provider=(model_config or ModelConfig.from_env()).provider(),
        tracing_disabled=os.environ.get("TIMESTEP_OPENAI_TRACING") != "1",
    )


async def run_agent(
    agent: Agent[Any],
    input_or_state: AgentInput,
    session: Session | None = None,
    stream: bool = False,
    *,
    run_config: RunConfig | None = None,
    max_turns: int = DEFAULT_MAX_TURNS,
    on_event: StreamHandler | None = None,
) -> RunResult | RunResultStreaming:
    """Run `agent` on new input or on a RunState to resume, until it finishes or pauses.

    With `stream=True` the model is called in streaming mode and every SDK stream event is
    passed to `on_event` as it happens; the returned result is complete either way, and its
    `interruptions` list the tool calls waiting for approval.
    """
    config = run_config or default_run_config()
    if not stream:
        return await Runner.run(
            agent, input_or_state, session=session, run_config=config, max_turns=max_turns
        )
    result = Runner.run_streamed(
        agent, input_or_state, session=session, run_config=config, max_turns=max_turns
    )
    async for event in result.stream_events():
        if on_event is not None:
            await on_event(event)
    return result


class SegmentListener(Protocol):
    """Receives what happens during a segment, in order."""

    async def on_item(self, event: PendingEvent) -> None: ...

    async def on_text_delta(self, payload: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class SegmentResult:
    last_agent: str
    usage: Usage
    final_output: str
    interruptions: list[NewInterruption]
    # The RunState JSON when the segment paused on interruptions; None when it finished.
    state_json: str | None


def _usage_of(sdk_usage: Any) -> Usage:
    return Usage(sdk_usage.requests, sdk_usage.input_tokens, sdk_usage.output_tokens, sdk_usage.total_tokens)


async def execute_segment(
    agent: Agent[Any],
    input_or_state: AgentInput,
    *,
    session: Session | None,
    run_config: RunConfig,
    listener: SegmentListener,
    max_turns: int = DEFAULT_MAX_TURNS,
) -> SegmentResult:
    """Run one segment (to the end or to the next interruptions), streaming as it goes."""
    # A RunState carries the usage of earlier segments; report only this segment's.
    usage_before = (
        _usage_of(input_or_state._context.usage)
        if isinstance(input_or_state, RunState) and input_or_state._context is not None
        else Usage()
    )
    current_agent = [agent.name]
    if isinstance(input_or_state, RunState) and input_or_state._current_agent is not None:
        current_agent[0] = input_or_state._current_agent.name

    async def on_event(event: StreamEvent) -> None:
        if event.type == "raw_response_event":
            payload = text_delta(event, current_agent[0])
            if payload is not None:
                await listener.on_text_delta(payload)
        elif event.type == "run_item_stream_event":
            item_event = event_for_item(event.item)
            if item_event is not None:
                await listener.on_item(item_event)
        elif event.type == "agent_updated_stream_event":
            current_agent[0] = event.new_agent.name

    result = await run_agent(
        agent,
        input_or_state,
        session,
        stream=True,
        run_config=run_config,
        max_turns=max_turns,
        on_event=on_event,
    )
    usage = _usage_of(result.context_wrapper.usage) - usage_before
    if result.interruptions:
        return SegmentResult(
            last_agent=result.last_agent.name,
            usage=usage,
            final_output="",
            interruptions=[interruption_for(item) for item in result.interruptions],
            state_json=result.to_state().to_string(),
        )
    return SegmentResult(result.last_agent.name, usage, output_text(result.final_output), [], None)


async def load_state(agent: Agent[Any], state_json: str) -> RunState[Any, Any]:
    return await RunState.from_string(agent, state_json)


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
