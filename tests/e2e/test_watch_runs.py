"""WatchRuns over gRPC and Connect: a tenant's run changes across runs, live, each exactly once,
and only that tenant's; a watcher that reconnects with its last cursor continues without gaps or
repeats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Final

import aiohttp
import grpc
import pytest
from google.protobuf import json_format
from timestep.app import TimestepService
from timestep.runtime.providers import ModelConfig
from timestep_client import TimestepClient
from timestep_client.v1 import runs_pb2

from tests.conftest import StartService
from timestep_testing import connect
from timestep_testing.fakes.openai_responses import FakeOpenAI, tool_call
from timestep_testing.helpers import EMAIL_ARGS, WAIT, expect_rpc_error, tenant_keys, unique, wait_until

ACME_KEY: Final = "ts_acme-watch-key-0123456789"
GLOBEX_KEY: Final = "ts_globex-watch-key-0123456789"
FEED_KINDS: Final = ("status_changed", "interruption", "interruption_decided")
RUNS_PER_TENANT: Final = 25


class Watcher:
    """A WatchRuns subscriber collecting every change in a background task, over gRPC (the
    client's) or, given an HTTP session and port, over Connect JSON."""

    def __init__(self, client: TimestepClient, cursor: str = "", *, http: ConnectWatch | None = None) -> None:
        self.changes: list[runs_pb2.WatchRunsResponse] = []
        self.bookmark = asyncio.Event()
        changes = client.watch_runs(cursor) if http is None else http.changes(cursor)
        self._task = asyncio.create_task(self._collect(changes))

    async def _collect(self, changes: AsyncIterator[runs_pb2.WatchRunsResponse]) -> None:
        async for change in changes:
            if change.HasField("event"):
                self.changes.append(change)
            else:
                self.bookmark.set()

    def keys(self) -> list[tuple[str, int]]:
        return [(change.run_id, change.event.sequence) for change in self.changes]

    async def close(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


@dataclass(frozen=True)
class ConnectWatch:
    session: aiohttp.ClientSession
    base_url: str
    api_key: str

    async def changes(self, cursor: str) -> AsyncIterator[runs_pb2.WatchRunsResponse]:
        path = "/timestep.v1.RunService/WatchRuns"
        async for message in connect.stream(
            self.session, self.base_url, path, {"cursor": cursor}, api_key=self.api_key
        ):
            yield json_format.ParseDict(message, runs_pb2.WatchRunsResponse())


@pytest.fixture
async def service(start_service: StartService, model_config: ModelConfig) -> AsyncIterator[TimestepService]:
    keys = tenant_keys(ACME_KEY, GLOBEX_KEY)
    async with start_service(model_config, api_keys=keys) as running:
        yield running


async def feed_of(client: TimestepClient, run_ids: list[str]) -> set[tuple[str, int]]:
    """The stored changes of these runs: what a watcher of their tenant must have received."""
    expected = set()
    for run_id in run_ids:
        async for event in client.stream_events(run_id):
            if event.sequence and event.WhichOneof("kind") in FEED_KINDS:
                expected.add((run_id, event.sequence))
    return expected


async def test_each_tenant_sees_its_own_run_changes_exactly_once_and_resumes_from_a_cursor(
    service: TimestepService, fake_openai: FakeOpenAI
) -> None:
    address = f"127.0.0.1:{service.port}"
    async with AsyncExitStack() as stack:
        acme = await stack.enter_async_context(TimestepClient(address, api_key=ACME_KEY))
        globex = await stack.enter_async_context(TimestepClient(address, api_key=GLOBEX_KEY))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        base_url = f"http://127.0.0.1:{service.http_port}"
        watchers = {
            "acme": Watcher(acme),
            "globex": Watcher(globex),
            "acme over Connect": Watcher(acme, http=ConnectWatch(session, base_url, ACME_KEY)),
            "globex over Connect": Watcher(globex, http=ConnectWatch(session, base_url, GLOBEX_KEY)),
        }
        for watcher in watchers.values():
            stack.push_async_callback(watcher.close)
            await asyncio.wait_for(watcher.bookmark.wait(), WAIT)

        fake_openai.script(
            *(tool_call("send_email", EMAIL_ARGS, call_id=unique("call")) for _ in range(2 * RUNS_PER_TENANT))
        )
        clients = {"acme": acme, "globex": globex}
        runs = {
            name: list(
                await asyncio.gather(
                    *(client.create_run("assistant", f"Tell Bob, {name} {n}") for n in range(RUNS_PER_TENANT))
                )
            )
            for name, client in clients.items()
        }
        run_ids = {name: [run.id for run in tenant_runs] for name, tenant_runs in runs.items()}

        def of_kind(name: str, kind: str) -> set[str]:
            return {c.run_id for c in watchers[name].changes if c.event.WhichOneof("kind") == kind}

        def interrupted(watcher: str) -> bool:
            return of_kind(watcher, "interruption") >= set(run_ids[watcher.split()[0]])

        await wait_until(lambda: all(interrupted(name) for name in watchers), timeout=60)
        # A decision is a change too: approve acme's first run.
        [interruption] = (await acme.get_run(run_ids["acme"][0])).interruptions
        await acme.approve(run_ids["acme"][0], interruption.id)
        await wait_until(lambda: bool(of_kind("acme", "interruption_decided")))
        await wait_until(lambda: bool(of_kind("acme over Connect", "interruption_decided")))

        for name in watchers:
            tenant = name.split()[0]
            expected = await feed_of(clients[tenant], run_ids[tenant])
            changes, count = watchers[name].changes, len(expected)
            await wait_until(lambda: len(changes) >= count)  # noqa: B023 - awaited in this iteration
            received = watchers[name].keys()
            assert len(received) == len(set(received)), f"{name} received a change twice"
            assert set(received) == expected, f"{name} received another tenant's change, or missed one"
            assert {c.agent for c in watchers[name].changes} == {"assistant"}
            for run_id in run_ids[tenant]:  # each run's changes in order
                sequences = [s for r, s in received if r == run_id]
                assert sequences == sorted(sequences)

        # Both transports deliver one feed, in commit order.
        assert watchers["acme over Connect"].keys() == watchers["acme"].keys()
        # A watcher that reconnects after the 10th change gets exactly the rest (a cursor from
        # one transport works on the other).
        first = watchers["acme"].changes
        resumed = Watcher(acme, first[9].cursor, http=ConnectWatch(session, base_url, ACME_KEY))
        stack.push_async_callback(resumed.close)
        await wait_until(lambda: len(resumed.changes) >= len(first) - 10)
        assert resumed.keys() == watchers["acme"].keys()[10:]
        assert not resumed.bookmark.is_set(), "a watcher with a cursor gets no bookmark"


async def test_a_cursor_the_service_did_not_issue_is_invalid_argument(service: TimestepService) -> None:
    async with TimestepClient(f"127.0.0.1:{service.port}", api_key=ACME_KEY) as client:
        call = client.runs.WatchRuns(runs_pb2.WatchRunsRequest(cursor="yesterday"), timeout=WAIT)
        error = await expect_rpc_error(call.read(), grpc.StatusCode.INVALID_ARGUMENT)
        assert "cursor" in (error.details() or "")


async def test_watching_without_a_key_is_unauthenticated(service: TimestepService) -> None:
    async with TimestepClient(f"127.0.0.1:{service.port}") as client:
        call = client.runs.WatchRuns(runs_pb2.WatchRunsRequest(), timeout=WAIT)
        await expect_rpc_error(call.read(), grpc.StatusCode.UNAUTHENTICATED)
