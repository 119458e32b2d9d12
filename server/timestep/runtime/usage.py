"""Recording the usage of every model call of a run: which agent called which model, the
tokens it used (input, output, cached, reasoning) and its estimated cost."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import reduce
from typing import Any

from agents import Agent, Model, ModelResponse, RunConfig, RunContextWrapper, RunHooks
from agents.models.default_models import get_default_model

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


def usage_of(sdk_usage: Any) -> Usage:
    """The service's Usage for an Agents SDK Usage (cost not yet estimated)."""
    return Usage(
        requests=sdk_usage.requests,
        input_tokens=sdk_usage.input_tokens,
        output_tokens=sdk_usage.output_tokens,
        total_tokens=sdk_usage.total_tokens,
        cached_tokens=sdk_usage.input_tokens_details.cached_tokens or 0,
        reasoning_tokens=sdk_usage.output_tokens_details.reasoning_tokens or 0,
    )


class UsageRecorder(RunHooks[Any]):
    """Run hooks that record each model call as it ends, priced by `prices`."""

    def __init__(self, run_config: RunConfig, prices: PriceTable) -> None:
        self._override = run_config.model
        self._prices = prices
        self.calls: list[ModelCall] = []

    async def on_llm_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse
    ) -> None:
        model = model_name_for(agent, self._override)
        usage, priced = self._prices.priced(model, usage_of(response.usage))
        self.calls.append(ModelCall(agent.name, model, usage, priced, datetime.now(UTC)))

    def total(self) -> Usage:
        return reduce(lambda total, call: total + call.usage, self.calls, Usage())
