"""`--provider-limit`: what it accepts, what it refuses and why, and whose limits a model uses."""

from __future__ import annotations

import argparse

import pytest
from timestep.serve_options import parse_provider_limit
from timestep.settings import ProviderLimits, provider_limits_key


def test_a_provider_limit_is_parsed() -> None:
    assert parse_provider_limit("openai:concurrency=8,requests=2,period=0.5") == (
        "openai",
        ProviderLimits(concurrency=8, requests=2, period_s=0.5),
    )
    assert parse_provider_limit("ollama:requests=3") == ("ollama", ProviderLimits(requests=3))


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("openai:requests=0", "requests must be at least 1"),
        ("openai:concurrency=0", "concurrency must be at least 1"),
        ("openai:requests=2,period=0", "period must be a positive number of seconds"),
        ("openai:requests=two", "invalid literal"),
        ("openai:burst=2", "expected PROVIDER:concurrency=N,requests=M,period=S"),
        ("openai", "expected PROVIDER:concurrency=N,requests=M,period=S"),
    ],
)
def test_a_bad_provider_limit_says_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=complaint):
        parse_provider_limit(text)


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-4.1", "openai"),
        ("openai/gpt-4.1", "openai"),
        ("ollama/llama3.2", "ollama"),
        ("acme/widget", "default"),
        ("mine/model", "mine"),
    ],
)
def test_whose_limits_a_model_uses(model: str, key: str) -> None:
    assert provider_limits_key(model, {"mine": ProviderLimits(requests=1)}) == key
