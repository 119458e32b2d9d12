"""The service's model settings: which providers serve model calls, configured from the
standard environment variables once at start, and the price table for cost estimates."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from timestep.runtime.models import (
    LocalModelProvider,
    MultiModelProvider,
    MultiModelProviderMap,
    OllamaModelProvider,
)
from timestep.runtime.models.ollama import OLLAMA_CLOUD_URL
from timestep.runtime.pricing import PriceTable
from timestep.runtime.secrets import remember_secrets
from timestep.settings import LOCAL_MODEL_ENV, LOCAL_PREFIX, OLLAMA_PREFIX


@dataclass(frozen=True)
class ModelConfig:
    # Keys are left out of repr() so that logging a config can never print one.
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = ""
    # The local Ollama ("" means http://localhost:11434).
    ollama_host: str = ""
    ollama_api_key: str = field(default="", repr=False)
    ollama_cloud_url: str = OLLAMA_CLOUD_URL
    # The local model's GGUF file ("" means the packaged Gemma 3 270M) and its CPU threads per
    # request (0: half the cores).
    local_model: str = ""
    local_threads: int = 0
    prices: PriceTable = field(default_factory=PriceTable)

    def __post_init__(self) -> None:
        remember_secrets(self.openai_api_key, self.ollama_api_key)

    @classmethod
    def from_env(cls, *, local_threads: int = 0) -> ModelConfig:
        return cls(
            openai_api_key=os.environ.get("OPENAI_API_KEY", ""),
            openai_base_url=os.environ.get("OPENAI_BASE_URL", ""),
            ollama_host=os.environ.get("OLLAMA_HOST", ""),
            ollama_api_key=os.environ.get("OLLAMA_API_KEY", ""),
            local_model=os.environ.get(LOCAL_MODEL_ENV, ""),
            local_threads=local_threads,
            prices=PriceTable.from_env(),
        )

    @property
    def openai_configured(self) -> bool:
        """An OpenAI key or an OpenAI-compatible endpoint is configured."""
        return bool(self.openai_api_key or self.openai_base_url)

    def provider(self) -> MultiModelProvider:
        """Routes model names by prefix: OpenAI (no prefix or openai/), Ollama (ollama/) and the
        local model (local/)."""
        providers = MultiModelProviderMap()
        providers.add_provider(
            OLLAMA_PREFIX,
            OllamaModelProvider(
                api_key=self.ollama_api_key, base_url=self.ollama_host, cloud_base_url=self.ollama_cloud_url
            ),
        )
        providers.add_provider(LOCAL_PREFIX, self.local_provider())
        return MultiModelProvider(
            providers,
            openai_api_key=self.openai_api_key,
            openai_base_url=self.openai_base_url or None,
            openai_use_responses=True,
        )

    def local_provider(self) -> LocalModelProvider:
        return LocalModelProvider(self.local_model, threads=self.local_threads or None)

    def missing(self, model_name: str | None = None) -> str | None:
        """What stops calls to `model_name` (None: the SDK's default model) from working, as an
        actionable message, or None."""
        return self.provider().missing(model_name)
