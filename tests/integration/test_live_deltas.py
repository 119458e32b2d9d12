"""A segment's text deltas reach this process's subscribers as they are published, even when
the model's stream, read from a full buffer, never waits in between."""

from __future__ import annotations

import asyncio
from typing import Final

from timestep.event_types import TextDelta
from timestep.runs.events import EventBus
from timestep.runs.segments import RunJournal
from timestep.store.runs import RunStore

WAIT: Final = 10.0  # an upper bound so a bug fails the test instead of hanging it; never a sleep


async def test_a_subscriber_gets_each_delta_before_the_next_one_is_published(store: RunStore) -> None:
    bus = EventBus()
    journal = RunJournal(store, bus, "run_live", 1)
    received: list[str] = []
    with bus.subscribe("run_live") as subscription:

        async def read(batches: int) -> None:
            for _ in range(batches):
                batch = await subscription.next_batch()
                assert batch is not None
                received.extend(event.data.delta for event in batch if isinstance(event.data, TextDelta))

        reader = asyncio.create_task(read(2))
        # Back to back, as a stream whose bytes have all arrived delivers them: no await between
        # them waits for anything but the journal itself.
        await journal.on_text_delta(TextDelta("assistant", "Sunny ", "msg_1"))
        await journal.on_text_delta(TextDelta("assistant", "in Paris.", "msg_1"))
        await asyncio.wait_for(reader, WAIT)

    # Not "Sunny in Paris." in one batch: the deltas were not held until the stream ended.
    assert received == ["Sunny ", "in Paris."]
