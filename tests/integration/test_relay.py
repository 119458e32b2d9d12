"""The delta relay between replicas: two real relayed buses on one PostgreSQL. Deltas of any size
and script reach the other replica whole and in order, in notifications PostgreSQL accepts, and
a delta sent while the database is unreachable arrives once it is back; a run change stored by
one replica wakes a WatchRuns watcher on the other."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from timestep.changes import SegmentOutcome
from timestep.domain import EventKind, NewRun, PendingEvent, RunStatus, Usage
from timestep.event_types import RunEvent, TextDelta
from timestep.run_feed import FeedEntry
from timestep.runs.apply import RunTransitions
from timestep.runs.events import EventBus, Subscription
from timestep.runs.relay import DELTAS_CHANNEL, relayed_bus
from timestep.runs.streaming import follow_run
from timestep.runs.watch import watch_runs
from timestep.scope import Scope
from timestep.store.content import ESCAPE
from timestep.store.database import open_pool
from timestep.store.runs import RunStore

WAIT: Final = 10.0  # an upper bound so a bug fails the test instead of hanging it; never a sleep
NOTIFY_LIMIT: Final = 8000  # PostgreSQL refuses a payload of this many bytes or more
CJK: Final = "漢字かな交じり文" * 2500  # 20,000 characters, 60,000 bytes of UTF-8
EMOJI: Final = "🧪👩\u200d👩\u200d👧" * 1000
HOSTILE: Final = (f'\x00a\ud800"\\\x01{ESCAPE}{ESCAPE}0\udfff\u200f' * 1000) + "\ud83e\uddea" * 500


def delta(run_id: str, text: str, item_id: str = "msg_1") -> RunEvent:
    return RunEvent(
        run_id,
        0,
        1,
        TextDelta(agent="a", delta=text, item_id=item_id),
        datetime.now(UTC),
    )


async def received_text(subscription: Subscription, length: int) -> str:
    """The deltas the subscription gets, concatenated, until `length` characters have arrived."""

    async def collect() -> str:
        text = ""
        while len(text) < length:
            batch = await subscription.next_batch()
            assert batch is not None, "the subscriber was told to re-read the store"
            assert all(event.kind is EventKind.TEXT_DELTA for event in batch)
            text += "".join(event.payload["delta"] for event in batch)
        return text

    return await asyncio.wait_for(collect(), WAIT)


@dataclass
class Relays:
    here_bus: EventBus
    there_bus: EventBus
    # Every payload NOTIFYed on the deltas channel, as a raw LISTEN connection received it.
    payloads: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def relays(
    database_url: str, sender_pool: asyncpg.Pool, receiver_pool: asyncpg.Pool
) -> AsyncIterator[Relays]:
    """A replica `here` that sends through `sender_pool` and a replica `there` that receives."""
    watcher = await asyncpg.connect(database_url)
    try:
        async with (
            relayed_bus(database_url, sender_pool, "here") as here,
            relayed_bus(database_url, receiver_pool, "there") as there,
        ):
            result = Relays(here, there)
            await watcher.add_listener(DELTAS_CHANNEL, lambda *args: result.payloads.append(args[3]))
            yield result
    finally:
        await watcher.close()


async def test_long_deltas_of_wide_characters_reach_another_replica_whole_and_in_order(
    pool: asyncpg.Pool, database_url: str
) -> None:
    run_id = f"run_{uuid.uuid4().hex}"
    texts = [CJK, EMOJI, HOSTILE, "tail"]
    async with relays(database_url, pool, pool) as replicas:
        with replicas.there_bus.subscribe(run_id) as subscription:
            replicas.here_bus.publish([delta(run_id, text) for text in texts])
            assert await received_text(subscription, len("".join(texts))) == "".join(texts)

    sizes = [len(payload.encode()) for payload in replicas.payloads]
    assert len(sizes) > 10, "the deltas were split"
    assert max(sizes) < NOTIFY_LIMIT


async def test_one_huge_delta_arrives_split_in_order(pool: asyncpg.Pool, database_url: str) -> None:
    run_id = f"run_{uuid.uuid4().hex}"
    text = CJK * 5 + EMOJI
    async with relays(database_url, pool, pool) as replicas:
        with replicas.there_bus.subscribe(run_id) as subscription:
            replicas.here_bus.publish([delta(run_id, text)])
            assert await received_text(subscription, len(text)) == text


# ----- a database that goes away --------------------------------------------------------------


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of PostgreSQL. `cut()` drops its connections and makes
    it close every new one at once (counting those attempts) until `restore()`."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cut = False
        self.refused = 0
        self._refused_changed = asyncio.Event()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.refused += 1
            self._refused_changed.set()
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, upstream_writer}
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    def cut(self) -> None:
        self._cut = True
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    def restore(self) -> None:
        self._cut = False

    async def wait_refused(self, count: int) -> None:
        async def refused() -> None:
            while self.refused < count:
                self._refused_changed.clear()
                await self._refused_changed.wait()

        await asyncio.wait_for(refused(), WAIT)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[tuple[CuttableProxy, str]]:
    """The proxy and a DSN of the test database through it."""
    parts = urlsplit(database_url)
    assert parts.hostname is not None
    cuttable = CuttableProxy(parts.hostname, parts.port or 5432)
    port = await cuttable.start()
    netloc = (
        parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{port}" if "@" in parts.netloc else f"127.0.0.1:{port}"
    )
    try:
        yield cuttable, urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    finally:
        await cuttable.close()


async def test_a_delta_sent_while_the_database_is_unreachable_arrives_once_it_is_back(
    pool: asyncpg.Pool, database_url: str, proxy: tuple[CuttableProxy, str]
) -> None:
    cuttable, proxied_dsn = proxy
    run_id = f"run_{uuid.uuid4().hex}"
    sender_pool = await open_pool(proxied_dsn, max_size=1)
    try:
        async with relays(database_url, sender_pool, pool) as replicas:
            with replicas.there_bus.subscribe(run_id) as subscription:
                replicas.here_bus.publish([delta(run_id, "before ")])
                assert await received_text(subscription, len("before ")) == "before "

                cuttable.cut()
                replicas.here_bus.publish([delta(run_id, "during " + CJK)])
                await cuttable.wait_refused(2)  # the first attempt failed, and it was tried again
                cuttable.restore()
                replicas.here_bus.publish([delta(run_id, "after")])

                expected = "during " + CJK + "after"
                assert await received_text(subscription, len(expected)) == expected
    finally:
        await sender_pool.close()


async def test_a_notification_delivered_twice_is_relayed_once(pool: asyncpg.Pool, database_url: str) -> None:
    """What a sender's retry of a NOTIFY that went through (only its reply was lost) looks like."""
    run_id = f"run_{uuid.uuid4().hex}"

    def notification(number: int, text: str) -> str:
        return json.dumps(
            {
                "origin": "elsewhere",
                "sender": "sender-1",
                "n": [number, 0],
                "run_id": run_id,
                "segment": 1,
                "payload": {"agent": "a", "item_id": "msg_1", "delta": text},
                "time": datetime.now(UTC).isoformat(),
            }
        )

    async with relays(database_url, pool, pool) as replicas:
        with replicas.there_bus.subscribe(run_id) as subscription:
            for number, text in ((1, "once "), (1, "once "), (2, "then")):
                await pool.execute("SELECT pg_notify($1, $2)", DELTAS_CHANNEL, notification(number, text))
            # A listener gets notifications in order: the duplicate came before "then".
            assert await received_text(subscription, len("once then")) == "once then"


async def test_a_runs_deltas_reach_a_follower_elsewhere_before_its_next_stored_event_and_its_end(
    pool: asyncpg.Pool, database_url: str
) -> None:
    here_store, there_store = RunStore(pool, origin="here"), RunStore(pool, origin="there")
    run, _, _ = await here_store.create_run(NewRun(agent=f"relay_{uuid.uuid4().hex[:8]}", input="Hi"))
    await RunTransitions(here_store).begin_segment(run.id, 1)
    text = CJK * 5  # 100,000 characters: many notifications
    async with relays(database_url, pool, pool) as replicas:
        stream = follow_run(there_store, replicas.there_bus, Scope.ALL, run.id, 0)
        assert [(await asyncio.wait_for(anext(stream), WAIT)).sequence for _ in range(2)] == [1, 2]

        replicas.here_bus.publish([delta(run.id, text)])
        # What the segment does before storing an event: wait for the deltas to be sent.
        await replicas.here_bus.forwarded(run.id)
        stored = await here_store.events.append_events(
            run.id,
            1,
            [PendingEvent(EventKind.MESSAGE_OUTPUT, {"agent": "a", "text": text, "item_json": "{}"})],
        )
        await replicas.here_bus.forwarded(run.id)
        _, finished = await RunTransitions(here_store).finish_segment(
            run.id,
            1,
            SegmentOutcome(status=RunStatus.COMPLETED, current_agent="a", usage=Usage(), final_output=""),
        )

        async def rest() -> list[RunEvent]:
            return [event async for event in stream]

        events = await asyncio.wait_for(rest(), WAIT)
    live = [event for event in events if not event.is_durable]
    assert "".join(event.payload["delta"] for event in live) == text
    assert events.index(live[-1]) < events.index(stored[0]), "the text came before its message"
    assert [event for event in events if event.is_durable] == [*stored, *finished]


async def test_a_run_change_stored_by_one_replica_reaches_a_watcher_on_another(
    pool: asyncpg.Pool, database_url: str
) -> None:
    tenant = f"relay-{uuid.uuid4().hex[:8]}"
    async with relays(database_url, pool, pool) as replicas:
        here = RunStore(pool, origin="here")
        start = await here.feed.head()
        changes = watch_runs(here.feed, replicas.there_bus, Scope.tenant(tenant), start)
        # Created on `here`, which publishes nothing on `there`'s bus: only the relay can wake it.
        run, _, _ = await here.create_run(NewRun(agent="relay", input="Hi", tenant=tenant))
        change = await asyncio.wait_for(anext(changes), WAIT)
        assert isinstance(change, FeedEntry)
        assert (change.event.run_id, change.event.payload["status"]) == (run.id, "queued")
        await changes.aclose()  # type: ignore[attr-defined]
