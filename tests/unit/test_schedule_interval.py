"""The shortest interval between a cron expression's firings, which --min-schedule-interval bounds."""

from __future__ import annotations

import pytest
from timestep.durability.schedules import shortest_interval_s


@pytest.mark.parametrize(
    ("cron", "timezone", "seconds"),
    [
        ("* * * * * *", "", 1),
        ("*/30 * * * * *", "", 30),
        ("0,10 * * * * *", "", 10),  # 10 s, then 50 s: the shortest counts
        ("* * * * *", "", 60),
        ("0 9 * * 1-5", "Europe/Paris", 86400),
        ("0 0,59 * * * *", "", 60),  # xx:59 and the next hour's xx:00 are a minute apart
    ],
)
def test_the_shortest_interval_of_a_cron_expression(cron: str, timezone: str, seconds: float) -> None:
    assert shortest_interval_s(cron, timezone) == seconds
