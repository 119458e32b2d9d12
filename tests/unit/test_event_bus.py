"""The in-process EventBus: fan-out, overflow, unsubscribe."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from timestep.domain import EventKind, RunEvent
from timestep.runs.events import EventBus


def event(run_id: str, sequence: int) -> RunEvent:
    return RunEvent(
        run_id=run_id,
        sequence=sequence,
        segment=1,
        kind=EventKind.MESSAGE_OUTPUT,
        payload={"text": f"{run_id}-{sequence}"},
        time=datetime.now(UTC),
    )


async def test_every_subscriber_of_a_run_gets_every_event() -> None:
    bus = EventBus()
    first_batch = [event("run_a", 1), event("run_a", 2)]
    with bus.subscribe("run_a") as one, bus.subscribe("run_a") as two, bus.subscribe("run_a") as three:
        assert bus.subscriber_count("run_a") == 3

        bus.publish(first_batch)

        for subscription in (one, two, three):
            assert await subscription.next_batch() == first_batch

        bus.publish([event("run_a", 3)])
        bus.publish([event("run_a", 4)])
        for subscription in (one, two, three):
            assert [e.sequence for e in await subscription.next_batch() or []] == [3, 4]


async def test_subscribers_only_see_their_own_run() -> None:
    bus = EventBus()
    with bus.subscribe("run_a") as on_a, bus.subscribe("run_b") as on_b:
        bus.publish([event("run_a", 1), event("run_b", 1), event("run_a", 2)])

        assert [(e.run_id, e.sequence) for e in await on_a.next_batch() or []] == [("run_a", 1), ("run_a", 2)]
        assert [(e.run_id, e.sequence) for e in await on_b.next_batch() or []] == [("run_b", 1)]

        bus.publish([event("run_b", 2)])
        # run_a's subscriber got nothing from run_b: its next batch holds only its next event.
        bus.publish([event("run_a", 3)])
        assert [e.sequence for e in await on_a.next_batch() or []] == [3]
        assert [e.sequence for e in await on_b.next_batch() or []] == [2]


async def test_publishing_to_a_run_nobody_follows_is_harmless() -> None:
    bus = EventBus()

    bus.publish([event("run_nobody", 1)])

    assert bus.subscriber_count("run_nobody") == 0


async def test_a_subscriber_that_falls_behind_is_told_to_reread() -> None:
    bus = EventBus(subscriber_buffer=3)
    with bus.subscribe("run_a") as slow, bus.subscribe("run_a") as fast:
        bus.publish([event("run_a", 1), event("run_a", 2)])
        assert [e.sequence for e in await fast.next_batch() or []] == [1, 2]
        bus.publish([event("run_a", 3), event("run_a", 4)])
        assert [e.sequence for e in await fast.next_batch() or []] == [3, 4]

        # `slow` never read: 4 events > 3 buffered, so it lost some.
        assert await slow.next_batch() is None

        # After the overflow it is a normal subscriber again.
        bus.publish([event("run_a", 5)])
        assert [e.sequence for e in await slow.next_batch() or []] == [5]
        assert [e.sequence for e in await fast.next_batch() or []] == [5]


async def test_a_full_buffer_is_not_an_overflow() -> None:
    bus = EventBus(subscriber_buffer=3)
    with bus.subscribe("run_a") as subscription:
        bus.publish([event("run_a", sequence) for sequence in (1, 2, 3)])

        assert [e.sequence for e in await subscription.next_batch() or []] == [1, 2, 3]


async def test_unsubscribing_cleans_up() -> None:
    bus = EventBus()
    with bus.subscribe("run_a") as stays:
        with bus.subscribe("run_a") as leaves:
            assert bus.subscriber_count("run_a") == 2
        assert bus.subscriber_count("run_a") == 1

        bus.publish([event("run_a", 1)])

        assert [e.sequence for e in await stays.next_batch() or []] == [1]
        assert len(leaves._buffer) == 0  # nothing reached the departed subscriber
    assert bus.subscriber_count("run_a") == 0
    assert "run_a" not in bus._subscriptions

    bus.publish([event("run_a", 2)])  # nobody left to deliver to
    assert bus.subscriber_count("run_a") == 0


async def test_unsubscribing_after_an_error_still_cleans_up() -> None:
    bus = EventBus()
    with pytest.raises(RuntimeError), bus.subscribe("run_a"):
        raise RuntimeError("the stream broke")

    assert bus.subscriber_count("run_a") == 0
    assert "run_a" not in bus._subscriptions
