"""One process of the SDK baseline for the scaling scenario: the in-process Agents SDK
(`Runner.run` of the assistant) against the fake model, `clients` concurrent loops.

    python -m bench.sdk_worker BASE_URL CLIENTS RUNS_PER_CLIENT

Warms up (one run per client), prints "ready", waits for a line on standard input, runs the
load and prints its result as one JSON line: {"latencies": [ms, ...], "errors": n}."""

from __future__ import annotations

import asyncio
import json
import sys

from agents import RunConfig, Runner
from timestep.examples.agents import assistant
from timestep.runtime.providers import ModelConfig

from bench.environment import API_KEY
from bench.load import load


async def work(base_url: str, clients: int, per_client: int) -> None:
    model_config = ModelConfig(openai_api_key=API_KEY, openai_base_url=base_url)
    run_config = RunConfig(model_provider=model_config.provider(), tracing_disabled=True)

    async def call(index: int) -> None:
        result = await Runner.run(assistant, "hello", run_config=run_config)
        if not result.final_output:
            raise RuntimeError("no final output")

    await load(clients, 1, call)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    found = await load(clients, per_client, call)
    print(json.dumps({"latencies": found.latencies, "errors": found.errors}), flush=True)


if __name__ == "__main__":
    asyncio.run(work(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
