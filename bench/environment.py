"""What the scenarios run on: the fake model process, databases of their own, services."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from agents import RunConfig
from timestep.app import ServiceConfig, TimestepService
from timestep.runtime.providers import ModelConfig
from timestep.store.database import resolve_server
from timestep_client import TimestepClient

from timestep_testing.harness import temporary_database

REPO = Path(__file__).resolve().parent.parent
API_KEY = "bench"


class FakeModelProcess:
    """`python -m bench.fake_model` in a subprocess."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.fake_model", cwd=REPO, stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        if not line.startswith(b"port "):
            raise RuntimeError(f"the fake model server did not start: {line!r}")
        self.port = int(line.split()[1])

    async def stats(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.origin}/bench/stats") as response:
            data: dict[str, Any] = await response.json()
            return data

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 10)


@asynccontextmanager
async def database(prefix: str = "timestep_bench") -> AsyncIterator[str]:
    """A database created for the benchmark and dropped after it (found like the service's)."""
    async with temporary_database((await resolve_server()).dsn, prefix) as url:
        yield url


@dataclass
class Bench:
    """Everything a scenario needs; services and clients live for the whole run."""

    smoke: bool
    fake: FakeModelProcess
    database_url: str
    pool: asyncpg.Pool
    durable: TimestepService
    plain: TimestepService
    durable_client: TimestepClient
    plain_client: TimestepClient
    model_config: ModelConfig
    run_config: RunConfig

    def serve_environment(self, database_url: str) -> dict[str, str]:
        """The environment of a `timestep serve` process of a scenario: on `database_url`, its
        OpenAI models the fake, and no HTTP port (8080 may be taken)."""
        return {
            **os.environ,
            "PG_CONNECTION_URI": database_url,
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": self.fake.base_url,
            "TIMESTEP_HTTP_PORT": "0",
        }

    def iterations(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full


async def start_service(database_url: str, model_config: ModelConfig, *, durable: bool) -> TimestepService:
    config = ServiceConfig(
        port=0,
        database_url=database_url,
        durable=durable,
        executor_id=f"bench-{'durable' if durable else 'plain'}-{uuid.uuid4().hex[:6]}",
        replica_timeout_s=3600,
        # The durable=False service's runs, in the same database, have no workflows to sweep for.
        stranded_grace_s=3600,
    )
    return await TimestepService.start(config, model_config=model_config)


@asynccontextmanager
async def bench_environment(smoke: bool) -> AsyncIterator[Bench]:
    fake = FakeModelProcess()
    await fake.start()
    try:
        async with database() as database_url:
            model_config = ModelConfig(openai_api_key=API_KEY, openai_base_url=fake.base_url)
            run_config = RunConfig(model_provider=model_config.provider(), tracing_disabled=True)
            pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
            durable = await start_service(database_url, model_config, durable=True)
            plain = await start_service(database_url, model_config, durable=False)
            durable_client = TimestepClient(f"127.0.0.1:{durable.port}")
            plain_client = TimestepClient(f"127.0.0.1:{plain.port}")
            try:
                yield Bench(
                    smoke,
                    fake,
                    database_url,
                    pool,
                    durable,
                    plain,
                    durable_client,
                    plain_client,
                    model_config,
                    run_config,
                )
            finally:
                await durable_client.close()
                await plain_client.close()
                await plain.stop(grace=1)
                await durable.stop(grace=1)
                await pool.close()
    finally:
        await fake.stop()
