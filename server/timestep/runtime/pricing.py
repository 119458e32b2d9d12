"""The price table: estimated cost of model calls, in US dollars per million tokens.

The defaults are OpenAI's list prices for common models (2025); Ollama models cost nothing
per token (local, or covered by an Ollama Cloud plan), nor does the local model (`local/…`).
Override or extend them with a JSON file named by TIMESTEP_PRICES:

    {
      "gpt-4.1":       {"input": 2.00, "cached_input": 0.50, "output": 8.00},
      "ollama/*":      {"input": 0, "output": 0},
      "acme/*":        {"input": 1.00, "output": 3.00}
    }

Keys are model names as agents and runs name them ("openai/" is dropped: "openai/gpt-4.1" is
priced as "gpt-4.1"), or shell-style patterns. An exact name wins, then the longest matching
pattern; a dated snapshot such as "gpt-4.1-2025-04-14" falls back to "gpt-4.1". A model with no
price costs 0 and is reported as unpriced. `cached_input` defaults to `input`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from timestep.domain import Usage
from timestep.settings import ConfigurationError

PRICES_ENV = "TIMESTEP_PRICES"
_DATED_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


class PricesError(ConfigurationError):
    """The TIMESTEP_PRICES file cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_tokens, usage.input_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        dollars = (
            (usage.input_tokens - cached) * self.input
            + cached * cached_rate
            + usage.output_tokens * self.output
        )
        return dollars / 1_000_000


DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "o3": Price(2.00, 8.00, 0.50),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "ollama/*": Price(0.0, 0.0, 0.0),
    "local/*": Price(0.0, 0.0, 0.0),
}


class PriceTable:
    def __init__(self, prices: Mapping[str, Price] = DEFAULT_PRICES) -> None:
        self._exact = {name: price for name, price in prices.items() if not _is_pattern(name)}
        patterns = [(name, price) for name, price in prices.items() if _is_pattern(name)]
        self._patterns = sorted(patterns, key=lambda entry: len(entry[0]), reverse=True)

    @classmethod
    def from_env(cls) -> PriceTable:
        """The defaults, overridden by the JSON file TIMESTEP_PRICES names (if set)."""
        path = os.environ.get(PRICES_ENV, "")
        return cls.with_overrides(Path(path)) if path else cls()

    @classmethod
    def with_overrides(cls, path: Path) -> PriceTable:
        try:
            data = json.loads(path.read_text())
        except OSError as error:
            raise PricesError(f"{PRICES_ENV}: cannot read {path}: {error.strerror or error}") from error
        except ValueError as error:
            raise PricesError(f"{PRICES_ENV}: {path} is not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise PricesError(f"{PRICES_ENV}: {path} must hold a JSON object of model name → price")
        return cls({**DEFAULT_PRICES, **{name: _price(path, name, entry) for name, entry in data.items()}})

    def price_of(self, model: str) -> Price | None:
        name = model.removeprefix("openai/")
        for candidate in (name, _DATED_SNAPSHOT.sub("", name)):
            if candidate in self._exact:
                return self._exact[candidate]
        return next((price for pattern, price in self._patterns if fnmatch.fnmatchcase(name, pattern)), None)

    def priced(self, model: str, usage: Usage) -> tuple[Usage, bool]:
        """`usage` with its estimated cost, and whether the model has a price."""
        price = self.price_of(model)
        if price is None:
            return replace(usage, cost_usd=0.0), False
        return replace(usage, cost_usd=price.cost(usage)), True


def _is_pattern(name: str) -> bool:
    return any(character in name for character in "*?[")


def _price(path: Path, name: str, entry: Any) -> Price:
    fields = {"input", "output", "cached_input"}
    if (
        not isinstance(entry, dict)
        or not {"input", "output"} <= entry.keys() <= fields
        or not all(isinstance(value, int | float) and value >= 0 for value in entry.values())
    ):
        raise PricesError(
            f"{PRICES_ENV}: in {path}, {name!r} must be an object with non-negative numbers "
            f'"input" and "output" (and optionally "cached_input"), in US dollars per million tokens; '
            f"got {entry!r}"
        )
    cached = entry.get("cached_input")
    return Price(float(entry["input"]), float(entry["output"]), None if cached is None else float(cached))
