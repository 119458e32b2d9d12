"""Shared fixtures: a fresh PostgreSQL database per test run, a fake OpenAI and a fake Ollama
server per test, the real service on a real port, and the real client."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from timestep.app import ServiceConfig, TimestepService
from timestep.runtime.providers import ModelConfig
from timestep.runtime.registry import AgentRegistry
from timestep.store.database import resolve_server
from timestep_client import TimestepClient

from timestep_testing.fakes.firecrawl import FakeFirecrawl
from timestep_testing.fakes.ollama import FakeOllama
from timestep_testing.fakes.openai_responses import FakeOpenAI
from timestep_testing.harness import create_database, drop_database, temporary_database

TEST_API_KEY = "sk-test-timestep-0123456789"
FIRECRAWL_TEST_KEY = "fc-test-timestep-31c7a9e2"

# A DBOS worker thread still writing a workflow's outcome when its test's database went away (a
# proxy or a server the test stopped) retries forever, and the interpreter joins it at exit.
DBOS_THREAD_PREFIX = "dbos-"
DBOS_THREAD_GRACE_S = 10.0
_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the run with its own status instead of hanging on such a thread (after the summary)."""
    stuck = [t for t in threading.enumerate() if t.name.startswith(DBOS_THREAD_PREFIX) and not t.daemon]
    for thread in stuck:
        thread.join(DBOS_THREAD_GRACE_S / len(stuck))
    if any(thread.is_alive() for thread in stuck) and _exit_status:
        print("ending the test process: a DBOS thread still retries a database that is gone", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[0])


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database created for this test run and dropped after it."""
    # Found the way the service finds its server: PG_CONNECTION_URI, localhost:5432, embedded.
    server = asyncio.run(resolve_server()).dsn
    database_dsn = asyncio.run(create_database(server, "timestep_test"))
    try:
        yield database_dsn
    finally:
        asyncio.run(drop_database(database_dsn))


@pytest.fixture
async def durable_database(database_url: str) -> AsyncIterator[str]:
    """A fresh database for one test: its DBOS queues (their limits live in the database),
    workflows, replicas and schedules are its own, so a restarted service recovers only what
    this test left in flight."""
    async with temporary_database(database_url, "timestep_durable") as url:
        yield url


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def firecrawl(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeFirecrawl]:
    """A fake Firecrawl that the web_search tool uses (FIRECRAWL_BASE_URL) with FIRECRAWL_TEST_KEY."""
    async with FakeFirecrawl() as fake:
        monkeypatch.setenv("FIRECRAWL_API_KEY", FIRECRAWL_TEST_KEY)
        monkeypatch.setenv("FIRECRAWL_BASE_URL", fake.base_url)
        yield fake


@pytest.fixture
async def fake_ollama() -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as fake:
        yield fake


@pytest.fixture
def model_config(fake_openai: FakeOpenAI, fake_ollama: FakeOllama) -> ModelConfig:
    return ModelConfig(
        openai_api_key=TEST_API_KEY, openai_base_url=fake_openai.base_url, ollama_host=fake_ollama.base_url
    )


def service_config(database_url: str) -> ServiceConfig:
    # A fresh executor id per service, and no sweeping for stranded runs: no test recovers the
    # segments another one left behind (or the runs store tests leave QUEUED without a workflow).
    return ServiceConfig(
        port=0,
        # The HTTP port too (any free port): the error table checks Connect against gRPC.
        http_port=0,
        database_url=database_url,
        executor_id=f"test-{uuid.uuid4().hex[:8]}",
        replica_timeout_s=3600,
        stranded_grace_s=3600,
    )


StartService = Callable[..., AbstractAsyncContextManager[TimestepService]]


@pytest.fixture
def start_service(database_url: str) -> StartService:
    """`async with start_service(model_config, registry=None, **config) as service:` a service of
    its own; `config` overrides ServiceConfig fields (e.g. `limits=Limits(...)`)."""

    @asynccontextmanager
    async def start(
        model_config: ModelConfig, registry: AgentRegistry | None = None, **config: Any
    ) -> AsyncIterator[TimestepService]:
        running = await TimestepService.start(
            replace(service_config(database_url), **config), model_config=model_config, registry=registry
        )
        try:
            yield running
        finally:
            await running.stop(grace=1)

    return start


@pytest.fixture
async def service(database_url: str, model_config: ModelConfig) -> AsyncIterator[TimestepService]:
    running = await TimestepService.start(service_config(database_url), model_config=model_config)
    try:
        yield running
    finally:
        await running.stop(grace=1)


@pytest.fixture
async def client(service: TimestepService) -> AsyncIterator[TimestepClient]:
    async with TimestepClient(f"127.0.0.1:{service.port}") as connected:
        yield connected
