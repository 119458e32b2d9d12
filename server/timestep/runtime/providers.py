"""Model providers: where model calls go, configured from the standard environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass

from agents import ModelProvider, OpenAIProvider


@dataclass(frozen=True)
class ModelConfig:
    openai_api_key: str
    openai_base_url: str

    @classmethod
    def from_env(cls) -> ModelConfig:
        return cls(
            openai_api_key=os.environ.get("OPENAI_API_KEY", ""),
            openai_base_url=os.environ.get("OPENAI_BASE_URL", ""),
        )

    def missing(self) -> str | None:
        """What stops model calls from working, as an actionable message, or None."""
        if not self.openai_api_key:
            return (
                "No OpenAI API key is configured. Set OPENAI_API_KEY in the service's environment "
                "(and OPENAI_BASE_URL for an OpenAI-compatible server), restart the service and "
                "create the run again."
            )
        return None

    def provider(self) -> ModelProvider:
        return OpenAIProvider(
            api_key=self.openai_api_key or None,
            base_url=self.openai_base_url or None,
            use_responses=True,
        )
