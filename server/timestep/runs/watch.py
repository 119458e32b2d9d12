"""Watching a tenant's runs: the run feed after a cursor, exactly once and in commit order, then
each change as it is committed (woken by the event bus, which the relay wakes for other
processes' commits)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from timestep.run_feed import FeedCursor, FeedEntry
from timestep.runs.events import EventBus
from timestep.scope import Scope
from timestep.store.feed import FEED_BATCH_SIZE, RunFeed

# How soon to look again when entries wait for an older transaction (any transaction on the
# database server) to finish, doubling while they keep waiting: nothing announces that it did.
HELD_BACK_RETRY_S = (0.02, 1.0)
# A watcher re-reads the feed this often even when nothing woke it, in case a notification was
# lost without the relay noticing.
IDLE_REREAD_S = 30.0


async def watch_runs(
    feed: RunFeed, bus: EventBus, scope: Scope, cursor: FeedCursor | None
) -> AsyncIterator[FeedEntry | FeedCursor]:
    """Yield the scope's changes after `cursor`; with None, first the current position (a
    bookmark), then the changes after it. Never ends by itself."""
    with bus.watch() as woken:
        if cursor is None:
            cursor = await feed.head()
            yield cursor
        held_back_retry = HELD_BACK_RETRY_S[0]
        while True:
            woken.clear()  # before reading: a commit from now on wakes the next round
            batch = await feed.after(scope, cursor)
            for change in batch.changes:
                cursor = change.cursor
                yield change
            if len(batch.changes) == FEED_BATCH_SIZE:
                continue
            if batch.held_back:
                wait, held_back_retry = held_back_retry, min(held_back_retry * 2, HELD_BACK_RETRY_S[1])
            else:
                wait, held_back_retry = IDLE_REREAD_S, HELD_BACK_RETRY_S[0]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), wait)
