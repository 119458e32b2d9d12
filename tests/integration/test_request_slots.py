"""Provider request slots (`timestep_take_request_slot`, migration 0010) on real PostgreSQL: N
per period and provider, the wait until one frees up, and which models take them."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from agents import Model, ModelProvider
from timestep.runtime.models.request_limits import RateLimitedModel, RateLimitedProvider, RequestLimiter
from timestep.settings import ProviderLimits
from timestep.store.request_slots import RequestSlots

PERIOD_S = 30.0  # long enough that no slot of a test leaves the window while it runs


def provider() -> str:
    """A provider name no other test (or earlier test run) uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


async def test_n_slots_per_period_then_the_wait_until_the_oldest_leaves(pool: asyncpg.Pool) -> None:
    slots, name = RequestSlots(pool), provider()

    taken = [await slots.take(name, 2, PERIOD_S) for _ in range(2)]
    wait = await slots.take(name, 2, PERIOD_S)
    other_provider = await slots.take(provider(), 2, PERIOD_S)

    assert taken == [0, 0]
    assert PERIOD_S - 5 < wait <= PERIOD_S
    assert other_provider == 0
    assert await pool.fetchval("SELECT count(*) FROM provider_request_slots WHERE provider = $1", name) == 2


async def test_a_lowered_limit_waits_for_enough_slots_to_leave(pool: asyncpg.Pool) -> None:
    slots, name = RequestSlots(pool), provider()
    for _ in range(3):
        assert await slots.take(name, 3, PERIOD_S) == 0
    times = [
        row["taken_at"]
        for row in await pool.fetch(
            "SELECT taken_at FROM provider_request_slots WHERE provider = $1 ORDER BY taken_at", name
        )
    ]

    wait = await slots.take(name, 2, PERIOD_S)
    now = await pool.fetchval("SELECT clock_timestamp()")

    # Two of three slots may be in the window: the second oldest has to leave, not the oldest.
    until_second = (times[1] - now).total_seconds() + PERIOD_S
    assert until_second - 1 < wait <= until_second + 1
    assert wait > (times[0] - now).total_seconds() + PERIOD_S


async def test_expired_slots_are_removed_and_free_their_place(pool: asyncpg.Pool) -> None:
    slots, name = RequestSlots(pool), provider()
    # Slots older than the period, as a busy provider leaves them.
    await pool.execute(
        "INSERT INTO provider_request_slots "
        "SELECT $1, clock_timestamp() - interval '1 minute' FROM generate_series(1, 5)",
        name,
    )

    assert await slots.take(name, 1, PERIOD_S) == 0
    assert await pool.fetchval("SELECT count(*) FROM provider_request_slots WHERE provider = $1", name) == 1


class Models(ModelProvider):
    def get_model(self, model_name: str | None) -> Model:
        return NamedModel(model_name)


class NamedModel(Model):
    def __init__(self, name: str | None) -> None:
        self.name = name

    async def get_response(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        raise AssertionError("not called")

    def stream_response(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        raise AssertionError("not called")


@pytest.mark.parametrize(
    ("model", "limited_as"),
    [
        ("gpt-4.1", "openai"),
        (None, "openai"),
        ("openai/gpt-4.1", "openai"),
        ("acme/widget", "default"),
        ("ollama/llama3.2", None),
    ],
)
def test_only_models_of_providers_with_a_request_limit_take_slots(
    pool: asyncpg.Pool, model: str | None, limited_as: str | None
) -> None:
    limits = {
        "openai": ProviderLimits(requests=5),
        "default": ProviderLimits(requests=1),
        "ollama": ProviderLimits(concurrency=2),
    }
    wrapped = RateLimitedProvider(Models(), RequestLimiter(RequestSlots(pool), limits)).get_model(model)

    if limited_as is None:
        assert isinstance(wrapped, NamedModel)
    else:
        assert isinstance(wrapped, RateLimitedModel)
        assert wrapped.provider == limited_as
