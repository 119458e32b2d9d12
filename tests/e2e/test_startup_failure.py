"""A service that cannot start (one of its ports is taken) says why and leaves nothing behind:
no database connections, no DBOS, no asyncio tasks, no listening ports, no model-call observer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Final

import asyncpg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from timestep.app import TimestepService
from timestep.runtime.observers import model_call_observers
from timestep.runtime.providers import ModelConfig
from timestep_client import TimestepClient

from tests.conftest import service_config
from timestep_testing.harness import free_port
from timestep_testing.helpers import WAIT

CONNECTIONS_CLOSE_S: Final = 10.0  # a closed connection's backend leaves pg_stat_activity soon after


@contextmanager
def occupied(port: int) -> Iterator[None]:
    """Another process's listener on 127.0.0.1:`port` (no SO_REUSEPORT: nobody can share it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        yield


async def connections(database_url: str) -> int:
    """Connections to the database, besides the one counting them."""
    probe = await asyncpg.connect(database_url)
    try:
        count: int = await probe.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return count
    finally:
        await probe.close()


async def settled_connections(database_url: str, expected: int) -> int:
    """The count once it is `expected`, or whatever it is after `CONNECTIONS_CLOSE_S`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECTIONS_CLOSE_S
    while (count := await connections(database_url)) != expected and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # polling what the database reports: nothing here to wait on
    return count


async def refuses(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


@pytest.mark.parametrize(
    ("taken", "message"),
    [
        ("metrics", "address already in use"),
        ("health", "could not bind the health port"),
        ("main", "is another process using the port?"),
    ],
)
async def test_a_taken_port_fails_the_start_and_leaves_nothing_open(
    durable_database: str, model_config: ModelConfig, taken: str, message: str
) -> None:
    ports = {"main": free_port(), "metrics": free_port(), "health": free_port()}
    assert len(set(ports.values())) == 3
    config = replace(
        service_config(durable_database),
        port=ports["main"],
        metrics_port=ports["metrics"],
        health_port=ports["health"],
    )
    before_connections = await connections(durable_database)
    before_tasks = asyncio.all_tasks()
    before_observers = list(model_call_observers)

    with occupied(ports[taken]), pytest.raises(OSError, match=message):
        await TimestepService.start(config, model_config=model_config)

    assert await settled_connections(durable_database, before_connections) == before_connections
    assert asyncio.all_tasks() - before_tasks == set()
    assert model_call_observers == before_observers
    for name, port in ports.items():
        assert await refuses(port), f"the {name} port still listens"

    # DBOS was stopped too: the same process starts the service again, and it serves.
    service = await TimestepService.start(config, model_config=model_config)
    try:
        async with TimestepClient(f"127.0.0.1:{service.port}") as client:
            answer = await health_pb2_grpc.HealthStub(client.channel).Check(
                health_pb2.HealthCheckRequest(), timeout=WAIT
            )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await service.stop(0)
