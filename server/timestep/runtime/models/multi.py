"""MultiModelProvider: one ModelProvider for every model name, routed by prefix.

    "gpt-4.1", "openai/gpt-4.1"       → OpenAI (the Agents SDK's OpenAIProvider)
    "ollama/llama3.2"                  → Ollama (OllamaModelProvider; local or cloud per name)
    "local/gemma3-270m"                → the local model (LocalModelProvider: llama.cpp in-process)
    "<prefix>/<model>"                 → the provider registered for <prefix>, else an error
                                         that lists the known prefixes

A per-run model override (RunConfig(model=...)) is looked up here too, so it routes the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from agents import Model, ModelProvider, OpenAIProvider
from openai import AsyncOpenAI

from timestep.runtime.models.errors import ModelNotConfiguredError
from timestep.runtime.models.local import LocalModelProvider
from timestep.runtime.models.ollama import OllamaModelProvider
from timestep.runtime.models.provider_map import MultiModelProviderMap
from timestep.settings import KNOWN_PROVIDERS, LOCAL_PREFIX, OLLAMA_PREFIX, OPENAI_PREFIX, split_model_name

# Built-in providers of prefixes the map has no entry for, configured from the environment.
FALLBACKS: dict[str, Callable[[], ModelProvider]] = {
    OLLAMA_PREFIX: OllamaModelProvider,
    LOCAL_PREFIX: LocalModelProvider,
}


@runtime_checkable
class ConfigurationCheck(Protocol):
    """A provider that can tell, without calling anything, why a model of it cannot be used."""

    def missing(self, model_name: str | None) -> str | None: ...


@runtime_checkable
class Preparation(Protocol):
    """A provider that can get a model ready before its first call (e.g. load it)."""

    async def prepare(self, model_name: str | None) -> None: ...


class MultiModelProvider(ModelProvider):
    def __init__(
        self,
        provider_map: MultiModelProviderMap | None = None,
        *,
        openai_api_key: str | None = None,
        openai_base_url: str | None = None,
        openai_client: AsyncOpenAI | None = None,
        openai_organization: str | None = None,
        openai_project: str | None = None,
        openai_use_responses: bool | None = None,
    ) -> None:
        """`openai_api_key=None` falls back to OPENAI_API_KEY; "" means no key.

        Entries of `provider_map` win over the built-in "openai", "ollama" and "local" routes;
        without an "ollama" entry, Ollama models go to an `OllamaModelProvider()` configured from
        the environment (OLLAMA_HOST, OLLAMA_API_KEY), and without a "local" entry local models
        to a `LocalModelProvider()` (TIMESTEP_LOCAL_MODEL).
        """
        self.provider_map = provider_map if provider_map is not None else MultiModelProviderMap()
        self._openai_api_key = openai_api_key
        self._openai_client = openai_client
        self.openai_provider = OpenAIProvider(
            api_key=openai_api_key or None,
            base_url=openai_base_url or None,
            openai_client=openai_client,
            organization=openai_organization,
            project=openai_project,
            use_responses=openai_use_responses,
        )
        self._fallbacks: dict[str, ModelProvider] = {}

    def known_prefixes(self) -> list[str]:
        return sorted({*KNOWN_PROVIDERS, *self.provider_map.get_mapping()})

    def missing(self, model_name: str | None) -> str | None:
        """Why `model_name` cannot be called as configured (an actionable message), or None."""
        prefix, name = split_model_name(model_name)
        provider = self._provider_for(prefix)
        if provider is None:
            known = ", ".join(f"{p}/" for p in self.known_prefixes())
            return (
                f"The model {model_name!r} starts with {prefix!r}/, which names no model provider. "
                f"Known prefixes: {known} (no prefix means OpenAI). Fix the model name (the agent's "
                f"model or CreateRun.model), or register a provider for {prefix!r} with "
                "MultiModelProviderMap.add_provider."
            )
        if provider is self.openai_provider:
            return self._openai_missing(model_name)
        if isinstance(provider, ConfigurationCheck):
            return provider.missing(name)
        return None

    def get_model(self, model_name: str | None) -> Model:
        problem = self.missing(model_name)
        if problem is not None:
            raise ModelNotConfiguredError(problem)
        prefix, name = split_model_name(model_name)
        provider = self._provider_for(prefix)
        assert provider is not None, "missing() reports unknown prefixes"
        return provider.get_model(name)

    async def prepare(self, model_name: str | None) -> None:
        """Get `model_name` ready before its first call, where its provider can (the local model
        loads); raises ModelNotConfiguredError (or another ModelProviderError) if it cannot be."""
        prefix, name = split_model_name(model_name)
        provider = self._provider_for(prefix)
        if isinstance(provider, Preparation):
            await provider.prepare(name)

    async def aclose(self) -> None:
        providers = [
            self.openai_provider,
            *self.provider_map.get_mapping().values(),
            *self._fallbacks.values(),
        ]
        for provider in {id(p): p for p in providers}.values():
            await provider.aclose()

    def _provider_for(self, prefix: str | None) -> ModelProvider | None:
        if prefix is None:
            return self.openai_provider
        mapped = self.provider_map.get_provider(prefix)
        if mapped is not None:
            return mapped
        if prefix == OPENAI_PREFIX:
            return self.openai_provider
        if prefix in FALLBACKS:
            if prefix not in self._fallbacks:
                self._fallbacks[prefix] = FALLBACKS[prefix]()
            return self._fallbacks[prefix]
        return None

    def _openai_missing(self, model_name: str | None) -> str | None:
        if self._openai_client is not None:
            return None
        key = self._openai_api_key if self._openai_api_key is not None else os.environ.get("OPENAI_API_KEY")
        if key:
            return None
        described = repr(model_name) if model_name else "the default model"
        return (
            f"The model {described} runs on OpenAI, and no OpenAI API key is "
            "configured. Set OPENAI_API_KEY in the service's environment (and OPENAI_BASE_URL for an "
            "OpenAI-compatible server), restart the service and create the run again; or use a model "
            'of another provider, e.g. "ollama/llama3.2".'
        )
