"""MultiModelProviderMap: which ModelProvider serves which model-name prefix."""

from __future__ import annotations

from agents import ModelProvider


class MultiModelProviderMap:
    """A map of model-name prefixes (the part before the first "/") to model providers.

    `MultiModelProvider` consults it before its built-in prefixes, so an entry for "openai" or
    "ollama" replaces the built-in provider for that prefix.
    """

    def __init__(self) -> None:
        self._mapping: dict[str, ModelProvider] = {}

    def has_prefix(self, prefix: str) -> bool:
        return prefix in self._mapping

    def get_mapping(self) -> dict[str, ModelProvider]:
        """A copy of the prefix → provider mapping."""
        return self._mapping.copy()

    def set_mapping(self, mapping: dict[str, ModelProvider]) -> None:
        """Replace the whole mapping."""
        self._mapping = dict(mapping)

    def get_provider(self, prefix: str) -> ModelProvider | None:
        return self._mapping.get(prefix)

    def add_provider(self, prefix: str, provider: ModelProvider) -> None:
        """Route model names "prefix/…" to `provider` (replacing any provider of that prefix)."""
        if not prefix or "/" in prefix:
            raise ValueError(f"a model prefix must be non-empty and contain no '/'; got {prefix!r}")
        self._mapping[prefix] = provider

    def remove_provider(self, prefix: str) -> None:
        """Stop routing "prefix/…"; KeyError if the prefix is not mapped."""
        del self._mapping[prefix]
