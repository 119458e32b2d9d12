"""A loopback TCP proxy in front of PostgreSQL that counts database round trips.

It reads the frontend protocol of every connection passing through it and counts each Sync
('S', the end of an extended-protocol batch: asyncpg's and psycopg's statements) and each
simple Query ('Q', e.g. BEGIN / COMMIT): the client waits for the server after each of them, so
one is one round trip. Startup, authentication and termination are not counted. The proxy
declines TLS (answers 'N' to SSLRequest itself) so that the messages stay readable; it listens
on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct
import threading
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

from timestep_client import InterruptionStatus, RunStatus, TimestepClient

_DBOS_APPLICATION = b"application_name\0dbos_transact\0"
_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
# The messages after which a client waits for the server.
_ROUND_TRIP_ENDS = frozenset(b"SQ")


class RoundTripProxy:
    """`async with RoundTripProxy(dsn) as proxy:` connect to `proxy.dsn` instead of `dsn`;
    `proxy.round_trips` and `proxy.dbos_round_trips` count so far."""

    def __init__(self, dsn: str) -> None:
        self._dsn = urlsplit(dsn)
        host = self._dsn.hostname or "127.0.0.1"
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the round-trip proxy relays to loopback databases only, not {host}")
        self._upstream = (host, self._dsn.port or 5432)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="round-trip-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # The service's own round trips, and DBOS's (its connections name their application).
        self.round_trips = 0
        self.dbos_round_trips = 0
        self.port = 0

    async def __aenter__(self) -> RoundTripProxy:
        # A loop of its own: DBOS connects with blocking calls from the service's loop.
        self._thread.start()
        self._server = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(
                asyncio.start_server(self._connection, "127.0.0.1", 0), self._loop
            )
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def dsn(self) -> str:
        """The proxied database's DSN, through the proxy."""
        user, at, _ = self._dsn.netloc.rpartition("@")
        return urlunsplit(self._dsn._replace(netloc=f"{user}{at}127.0.0.1:{self.port}"))

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close(), self._loop))
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join)
        self._loop.close()

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        server_writer: asyncio.StreamWriter | None = None
        try:
            startup = await _startup_message(client_reader, client_writer)
            if startup is None:
                return
            server_reader, server_writer = await asyncio.open_connection(*self._upstream)
            server_writer.write(startup)
            async with asyncio.TaskGroup() as group:
                group.create_task(
                    self._frontend(client_reader, server_writer, dbos=_DBOS_APPLICATION in startup)
                )
                group.create_task(_pipe(server_reader, client_writer))
        except* (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            for writer in (client_writer, server_writer):
                if writer is not None:
                    writer.close()

    async def _frontend(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, dbos: bool
    ) -> None:
        """Forward the client's messages, counting those that end a round trip (apart for
        DBOS's connections)."""
        while True:
            header = await reader.readexactly(5)
            body = await reader.readexactly(struct.unpack("!I", header[1:])[0] - 4)
            if header[0] in _ROUND_TRIP_ENDS:
                if dbos:
                    self.dbos_round_trips += 1
                else:
                    self.round_trips += 1
            writer.write(header + body)
            if header[0] == ord("X"):  # Terminate
                await writer.drain()
                writer.close()
                return
            await writer.drain()


async def _startup_message(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
    """The client's startup message (or cancel request), after declining TLS and GSS encryption
    itself; None if the client left first."""
    while True:
        try:
            length = struct.unpack("!I", await reader.readexactly(4))[0]
        except asyncio.IncompleteReadError:
            return None
        body = await reader.readexactly(length - 4)
        if struct.unpack("!I", body[:4])[0] in (_SSL_REQUEST, _GSSENC_REQUEST):
            writer.write(b"N")
            await writer.drain()
            continue
        return struct.pack("!I", length) + body


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(ConnectionError):
        writer.close()


@dataclass(frozen=True)
class HitlRoundTrips:
    """The round trips of one HITL cycle, by the call that caused them (each waiting call
    includes the segment it waits for)."""

    create: int  # CreateRun(wait) until the run pauses for approval
    approve: int  # ApproveInterruption of each pending interruption
    resume: int  # ResumeRun(wait) until the run completes
    # DBOS's, over the whole cycle (workflow rows of the two segments).
    dbos: int = 0

    @property
    def total(self) -> int:
        return self.create + self.approve + self.resume


async def hitl_round_trips(
    client: TimestepClient, proxy: RoundTripProxy, agent: str, prompt: str
) -> HitlRoundTrips:
    """Run one HITL cycle (CreateRun → paused → approve → ResumeRun → completed), counting."""
    start = proxy.round_trips
    dbos_start = proxy.dbos_round_trips
    run = await client.create_run(agent, prompt, wait=True)
    created = proxy.round_trips
    if run.status != RunStatus.RUN_STATUS_INTERRUPTED:
        raise AssertionError(f"the HITL run ended {RunStatus.Name(run.status)} {run.error}")
    for interruption in run.interruptions:
        if interruption.status == InterruptionStatus.INTERRUPTION_STATUS_PENDING:
            await client.approve(run.id, interruption.id)
    approved = proxy.round_trips
    run = await client.resume(run.id, wait=True)
    if run.status != RunStatus.RUN_STATUS_COMPLETED:
        raise AssertionError(f"the resumed HITL run ended {RunStatus.Name(run.status)} {run.error}")
    return HitlRoundTrips(
        created - start, approved - created, proxy.round_trips - approved, proxy.dbos_round_trips - dbos_start
    )
