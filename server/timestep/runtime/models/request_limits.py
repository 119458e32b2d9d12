"""Provider request limits held at the provider's door: every real model request first waits
for a slot of its provider (`serve --provider-limit P:requests=N,period=S`).

The wrapper sits under `StepModel`, inside the call a step runs, so a model response replayed
from the step journal takes no slot: only requests that reach the provider count.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

from agents import Model, ModelProvider, ModelResponse, ModelRetryAdvice, ModelRetryAdviceRequest

from timestep.settings import ProviderLimits, provider_limits_key


class SlotTaker(Protocol):
    async def take(self, provider: str, requests: int, period_s: float) -> float:
        """0 when a slot was taken, else the seconds until one frees up."""
        ...


class RequestLimiter:
    """Waits for a request slot of the model's provider, when that provider has a request limit."""

    def __init__(self, slots: SlotTaker, limits: dict[str, ProviderLimits]) -> None:
        self._slots = slots
        self._limits = limits

    def limits(self, model_name: str) -> tuple[str, ProviderLimits] | None:
        """The provider and its limits when requests to `model_name` are limited."""
        provider = provider_limits_key(model_name, self._limits)
        limits = self._limits.get(provider)
        return (provider, limits) if limits is not None and limits.requests is not None else None

    async def wait_for_slot(self, provider: str, limits: ProviderLimits) -> None:
        assert limits.requests is not None
        # The database says how long until a slot frees up; nothing here could signal that sooner
        # (the slot may be freed by time alone, and on another replica).
        while True:
            wait = await self._slots.take(provider, limits.requests, limits.period_s)
            if wait <= 0:
                return
            await asyncio.sleep(wait)


class RateLimitedModel(Model):
    """A model whose every request first takes a slot of its provider."""

    def __init__(self, inner: Model, limiter: RequestLimiter, provider: str, limits: ProviderLimits) -> None:
        self._inner = inner
        self._limiter = limiter
        self.provider = provider
        self._limits = limits

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        await self._limiter.wait_for_slot(self.provider, self._limits)
        return await self._inner.get_response(*args, **kwargs)

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        await self._limiter.wait_for_slot(self.provider, self._limits)
        async for event in self._inner.stream_response(*args, **kwargs):
            yield event

    def get_retry_advice(self, request: ModelRetryAdviceRequest) -> ModelRetryAdvice | None:
        return self._inner.get_retry_advice(request)

    async def close(self) -> None:
        await self._inner.close()


class RateLimitedProvider(ModelProvider):
    """Wraps the models of providers with a request limit in a `RateLimitedModel`."""

    def __init__(self, inner: ModelProvider, limiter: RequestLimiter) -> None:
        self._inner = inner
        self._limiter = limiter

    def get_model(self, model_name: str | None) -> Model:
        model = self._inner.get_model(model_name)
        # No name: the default model, which is OpenAI's.
        limited = self._limiter.limits(model_name or "openai/")
        return RateLimitedModel(model, self._limiter, *limited) if limited else model

    async def aclose(self) -> None:
        await self._inner.aclose()
