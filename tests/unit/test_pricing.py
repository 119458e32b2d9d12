"""The price table: which price a model name gets, the cost of a call's tokens, and overrides
from the JSON file TIMESTEP_PRICES names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from timestep.domain import Usage
from timestep.runtime.pricing import DEFAULT_PRICES, Price, PriceTable


def test_a_call_costs_uncached_input_cached_input_and_output_at_their_rates() -> None:
    usage = Usage(requests=1, input_tokens=1_000_000, output_tokens=500_000, cached_tokens=200_000)

    cost = Price(input=2.0, output=8.0, cached_input=0.5).cost(usage)

    assert cost == pytest.approx(0.8 * 2.0 + 0.2 * 0.5 + 0.5 * 8.0)
    assert Price(input=2.0, output=8.0).cost(usage) == pytest.approx(2.0 + 4.0), (
        "cached input defaults to input"
    )


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4.1", DEFAULT_PRICES["gpt-4.1"]),
        ("openai/gpt-4.1", DEFAULT_PRICES["gpt-4.1"]),
        ("gpt-4.1-2025-04-14", DEFAULT_PRICES["gpt-4.1"]),
        ("gpt-4.1-mini", DEFAULT_PRICES["gpt-4.1-mini"]),
        ("ollama/llama3.2", DEFAULT_PRICES["ollama/*"]),
        ("gpt-unknown-9", None),
    ],
)
def test_default_prices_by_model_name(model: str, price: Price | None) -> None:
    assert PriceTable().price_of(model) == price


def test_priced_usage_carries_its_cost_and_whether_a_price_was_known() -> None:
    usage = Usage(requests=1, input_tokens=1000, output_tokens=100)

    priced, known = PriceTable().priced("gpt-4.1", usage)
    unpriced, unknown = PriceTable().priced("gpt-unknown-9", usage)

    assert known
    assert priced.cost_usd == pytest.approx((1000 * 2.0 + 100 * 8.0) / 1e6)
    assert (unknown, unpriced.cost_usd) == (False, 0.0)
    assert priced.input_tokens == unpriced.input_tokens == 1000


def test_a_prices_file_overrides_and_extends_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "gpt-4.1": {"input": 1.0, "output": 4.0},
                "acme/*": {"input": 3.0, "output": 6.0, "cached_input": 1.0},
                "acme/rocket-*": {"input": 9.0, "output": 9.0},
            }
        )
    )
    monkeypatch.setenv("TIMESTEP_PRICES", str(path))

    table = PriceTable.from_env()

    assert table.price_of("gpt-4.1") == Price(1.0, 4.0)
    assert table.price_of("acme/widget") == Price(3.0, 6.0, 1.0)
    assert table.price_of("acme/rocket-1") == Price(9.0, 9.0), "the longest matching pattern wins"
    assert table.price_of("gpt-4o") == DEFAULT_PRICES["gpt-4o"], "other defaults stay"


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("not json", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"m": {"input": 1}}', "'m' must be an object"),
        ('{"m": {"input": -1, "output": 1}}', "non-negative"),
        ('{"m": {"input": 1, "output": 1, "extra": 2}}', "'m' must be an object"),
    ],
)
def test_a_bad_prices_file_is_refused_saying_what_is_wrong(
    tmp_path: Path, content: str, complaint: str
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)

    with pytest.raises(ValueError, match=complaint) as caught:
        PriceTable.with_overrides(path)

    assert "TIMESTEP_PRICES" in str(caught.value)
