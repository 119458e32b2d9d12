"""The in-process EventBus: fan-out, overflow, unsubscribe, re-read signals, and the hooks the
cross-replica relay uses (forwarding live events, delivering relayed ones)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from timestep.event_types import MessageOutput, RunEvent, TextDelta
from timestep.runs.events import EventBus


def event(run_id: str, sequence: int) -> RunEvent:
    return RunEvent(
        run_id=run_id,
        sequence=sequence,
        segment=1,
        data=MessageOutput(agent="a", text=f"{run_id}-{sequence}", item_json="{}"),
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


def delta(run_id: str, text: str, item_id: str = "msg_1", agent: str = "assistant") -> RunEvent:
    """A live-only event: it has no sequence."""
    return RunEvent(
        run_id=run_id,
        sequence=0,
        segment=1,
        data=TextDelta(agent=agent, delta=text, item_id=item_id),
        time=datetime.now(UTC),
    )


WAIT = 5.0  # an upper bound so a bug fails the test instead of hanging it; never a sleep


async def test_reread_drops_the_buffer_and_makes_the_next_batch_none() -> None:
    bus = EventBus()
    with bus.subscribe("run_a") as subscription:
        bus.publish([event("run_a", 1), event("run_a", 2)])

        subscription.reread()

        assert await subscription.next_batch() is None
        assert len(subscription._buffer) == 0
        bus.publish([event("run_a", 3)])
        assert [e.sequence for e in await subscription.next_batch() or []] == [3]


async def test_a_nudge_makes_only_that_runs_subscribers_reread() -> None:
    bus = EventBus()
    with bus.subscribe("run_a") as one, bus.subscribe("run_a") as two, bus.subscribe("run_b") as other:
        bus.publish([event("run_a", 1), event("run_b", 1)])

        bus.nudge("run_a")
        bus.nudge("run_nobody")  # nobody to tell: harmless

        assert await one.next_batch() is None
        assert await two.next_batch() is None
        assert [(e.run_id, e.sequence) for e in await other.next_batch() or []] == [("run_b", 1)]
        # A nudge is a one-off: afterwards events arrive as usual.
        bus.publish([event("run_a", 2)])
        assert [e.sequence for e in await one.next_batch() or []] == [2]
        assert [e.sequence for e in await two.next_batch() or []] == [2]


async def test_a_nudge_wakes_a_waiting_subscriber() -> None:
    bus = EventBus()
    with bus.subscribe("run_a") as subscription:
        waiting = asyncio.create_task(subscription.next_batch())
        await asyncio.wait({waiting}, timeout=0)  # let it start waiting (not a sleep: no time passes)
        assert not waiting.done()

        bus.nudge("run_a")

        assert await asyncio.wait_for(waiting, WAIT) is None


class Recorder:
    """A forwarder that keeps what it is given."""

    def __init__(self, forwarded: list[RunEvent]) -> None:
        self.forwarded = forwarded

    def forward(self, event: RunEvent) -> None:
        self.forwarded.append(event)

    async def sent(self, run_id: str) -> None:
        return None


async def test_publish_forwards_live_only_events() -> None:
    forwarded: list[RunEvent] = []
    bus = EventBus(forwarder=Recorder(forwarded))
    durable_one, live, durable_two = event("run_a", 1), delta("run_a", "Hel"), event("run_a", 2)
    unfollowed = delta("run_nobody", "lo")
    with bus.subscribe("run_a") as subscription:
        bus.publish([durable_one, live, durable_two])
        # Forwarded even if nobody here follows the run: a follower may be on another replica.
        bus.publish([unfollowed])

        assert await subscription.next_batch() == [durable_one, live, durable_two]
    assert forwarded == [live, unfollowed]


async def test_publish_without_forwarding_still_delivers_live_events() -> None:
    bus = EventBus()
    live = delta("run_a", "Hi")
    with bus.subscribe("run_a") as subscription:
        bus.publish([live])

        assert await subscription.next_batch() == [live]


async def test_deliver_reaches_local_subscribers_without_forwarding() -> None:
    forwarded: list[RunEvent] = []
    bus = EventBus(forwarder=Recorder(forwarded))
    relayed = delta("run_a", "from another replica")
    with bus.subscribe("run_a") as on_a, bus.subscribe("run_b") as on_b:
        bus.deliver(relayed)
        bus.deliver(delta("run_nobody", "dropped"))  # nobody here follows it

        assert await on_a.next_batch() == [relayed]
        bus.publish([event("run_b", 1)])
        assert [e.sequence for e in await on_b.next_batch() or []] == [1]  # run_b got nothing delivered
    assert forwarded == []  # delivering never forwards (no echo back to other replicas)


async def test_deliver_respects_the_subscriber_buffer() -> None:
    bus = EventBus(subscriber_buffer=2)
    with bus.subscribe("run_a") as subscription:
        for text, item in (("a", "msg_1"), ("b", "msg_2"), ("c", "msg_3")):
            bus.deliver(delta("run_a", text, item))

        assert await subscription.next_batch() is None


async def test_a_slow_reader_gets_consecutive_deltas_of_one_item_merged_and_misses_no_text() -> None:
    bus = EventBus(subscriber_buffer=3)
    with bus.subscribe("run_a") as subscription:
        for text in ("The", " weather", " is", " fine."):
            bus.deliver(delta("run_a", text))
        bus.deliver(delta("run_a", "Next", item_id="msg_2"))
        bus.deliver(delta("run_a", "Other agent", item_id="msg_2", agent="billing"))

        batch = await asyncio.wait_for(subscription.next_batch(), WAIT)

    assert batch is not None
    assert [(e.payload["agent"], e.payload["item_id"], e.payload["delta"]) for e in batch] == [
        ("assistant", "msg_1", "The weather is fine."),
        ("assistant", "msg_2", "Next"),
        ("billing", "msg_2", "Other agent"),
    ]


async def test_a_nudge_keeps_buffered_live_events_and_they_come_before_the_reread() -> None:
    """Relayed deltas buffered when another process's stored events are announced are not in
    the store: dropping them would lose text."""
    bus = EventBus()
    with bus.subscribe("run_a") as subscription:
        bus.publish([delta("run_a", "Hel"), event("run_a", 1)])
        bus.deliver(delta("run_a", "lo"))

        bus.nudge("run_a")

        batch = await asyncio.wait_for(subscription.next_batch(), WAIT)
        assert [e.payload["delta"] for e in batch or []] == ["Hel", "lo"], "stored ones come from the store"
        assert await asyncio.wait_for(subscription.next_batch(), WAIT) is None


async def test_a_subscription_to_stored_events_only_gets_no_deltas_and_is_not_a_stream() -> None:
    bus = EventBus()
    delta = RunEvent("run_a", 0, 1, TextDelta("a", "Sun", "msg_1"), datetime.now(UTC))
    stored = event("run_a", 1)
    with bus.subscribe("run_a", live=False) as waiter:
        assert not bus.streams_live("run_a")

        bus.publish([delta, stored])
        assert await waiter.next_batch() == [stored]

        with bus.subscribe("run_a") as stream:
            assert bus.streams_live("run_a")
            bus.publish([delta])
            assert await stream.next_batch() == [delta]
        assert not bus.streams_live("run_a")
