"""Webhook retries back off exponentially up to a cap, with jitter that a recovered delivery
workflow computes again exactly (so it decides as it did before the crash)."""

from __future__ import annotations

from timestep.durability.webhooks import retry_delay
from timestep.settings import WebhookSettings

SETTINGS = WebhookSettings(retry_initial_s=5.0, retry_max_s=3600.0)


def test_each_wait_doubles_up_to_the_cap_with_jitter_of_half_to_all_of_it() -> None:
    for number in range(1, 40):
        base = min(3600.0, 5.0 * 2 ** (number - 1))
        delay = retry_delay(SETTINGS, "msg_1", number)
        assert base / 2 <= delay <= base


def test_the_jitter_is_the_same_for_the_same_attempt_and_differs_between_deliveries() -> None:
    assert retry_delay(SETTINGS, "msg_1", 3) == retry_delay(SETTINGS, "msg_1", 3)
    spread = {retry_delay(SETTINGS, f"msg_{n}", 3) for n in range(50)}
    assert len(spread) > 40


def test_a_day_of_retries_is_a_few_dozen_attempts() -> None:
    waited, attempts = 0.0, 1
    while waited + (delay := retry_delay(SETTINGS, "msg_1", attempts)) <= SETTINGS.retry_window_s:
        waited += delay
        attempts += 1
    assert 20 <= attempts <= 60
