"""Recording the usage of every model call of a run: which agent called which model, the
tokens it used (input, output, cached, reasoning) and its estimated cost."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import reduce
from typing import Any

from agents import Agent, Model, ModelResponse, RunConfig
from agents import Usage as SdkUsage
from agents.models.default_models import get_default_model
from openai.types.responses import Response

from timestep.domain import ModelCall, Usage
from timestep.runtime.pricing import PriceTable


def model_name_for(agent: Agent[Any], override: str | Model | None = None) -> str:
    """The model a turn of `agent` calls, named as routed ("gpt-4.1", "ollama/llama3.2").

    A per-run override wins over the agent's own model, as in the Agents SDK; an agent without
    a model uses the SDK's default model.
    """
    chosen = override or agent.model
    if isinstance(chosen, str) and chosen:
        return chosen
    if isinstance(chosen, Model):
        return str(getattr(chosen, "model", "") or type(chosen).__name__)
    return get_default_model()


def usage_of(response: Response | ModelResponse) -> Usage:
    """The service's Usage of a completed model call (cost not yet estimated): a call counts as a
    request even when its provider reported no usage."""
    usage = response.usage
    if usage is None:
        return Usage(requests=1)
    requests = usage.requests if isinstance(usage, SdkUsage) else 1
    return Usage(
        requests=max(requests, 1),
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        total_tokens=usage.total_tokens or 0,
        cached_tokens=getattr(usage.input_tokens_details, "cached_tokens", 0) or 0,
        reasoning_tokens=getattr(usage.output_tokens_details, "reasoning_tokens", 0) or 0,
    )


class UsageRecorder:
    """Records each model call of a segment as its step completes (a replayed one too), priced
    by `prices` and attributed to the agent whose turn it is. Calls are recorded as they happen,
    so those made before a segment fails are there to count."""

    def __init__(self, run_config: RunConfig, prices: PriceTable) -> None:
        self._override = run_config.model
        self._prices = prices
        self._agent: Agent[Any] | None = None
        self.calls: list[ModelCall] = []

    def agent_started(self, agent: Agent[Any]) -> None:
        self._agent = agent

    def record(self, model_name: str | None, response: Response | ModelResponse) -> None:
        agent = self._agent.name if self._agent is not None else ""
        model = model_name or (
            model_name_for(self._agent, self._override) if self._agent else get_default_model()
        )
        usage, priced = self._prices.priced(model, usage_of(response))
        self.calls.append(ModelCall(agent, model, usage, priced, datetime.now(UTC)))

    def total(self) -> Usage:
        return reduce(lambda total, call: total + call.usage, self.calls, Usage())
