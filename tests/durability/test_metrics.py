"""Prometheus metrics of a real `timestep serve --metrics-port`, read over HTTP: RPCs by method
and code, runs by status, queue depth, model call latency and tokens.

On a database of its own (the provider queue limit used to hold a run QUEUED lives there).
"""

from __future__ import annotations

import asyncio

import aiohttp
import grpc
from prometheus_client.parser import text_string_to_metric_families
from timestep_client import RunStatus

from tests.durability.conftest import WAIT, LaunchReplica
from tests.e2e.test_cli import run_cli
from timestep_testing.fakes.openai_responses import FakeOpenAI, gate, text
from timestep_testing.harness import free_port
from timestep_testing.helpers import expect_rpc_error

RUNS = "timestep.v1.RunService"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        body = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_endpoint_counts_rpcs_runs_queues_and_tokens(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    metrics_port = free_port()
    held = asyncio.Event()
    fake_openai.script(text("Hello."), gate(text("Held."), held), text("Third."))
    server = await launch(
        "metrics", "--metrics-port", str(metrics_port), "--provider-limit", "openai:concurrency=1"
    )
    async with server.client() as client:
        before = await scrape(metrics_port)
        done = await client.create_run("assistant", "Hi.", wait=True, timeout=WAIT)
        await expect_rpc_error(client.get_run("run_does_not_exist"), grpc.StatusCode.NOT_FOUND)
        # One run holds the provider's only slot, so the next waits QUEUED.
        holding = await client.create_run("assistant", "Hold on.")
        await fake_openai.wait_for_requests(2, WAIT)
        queued = await client.create_run("assistant", "After you.")
        queued = await client.get_run(queued.id)
        during = await scrape(metrics_port)
        # Cancelled while still held: released first, the run could complete before its cancel.
        await client.cancel(holding.id)
        await client.cancel(queued.id)
        held.set()

    assert done.status == RunStatus.RUN_STATUS_COMPLETED, done
    assert queued.status == RunStatus.RUN_STATUS_QUEUED, queued
    assert value(before, "timestep_rpc_requests_total", method=f"{RUNS}/CreateRun", code="OK") == 0
    assert value(during, "timestep_rpc_requests_total", method=f"{RUNS}/CreateRun", code="OK") == 3
    assert value(during, "timestep_rpc_requests_total", method=f"{RUNS}/GetRun", code="NOT_FOUND") == 1
    assert value(during, "timestep_rpc_requests_total", method=f"{RUNS}/GetRun", code="OK") == 1
    assert value(during, "timestep_rpc_latency_seconds_count", method=f"{RUNS}/CreateRun", code="OK") == 3
    # Runs by status and the queue, counted in the database.
    assert value(during, "timestep_runs", status="completed") == 1
    assert value(during, "timestep_runs", status="running") == 1
    assert value(during, "timestep_runs", status="queued") == 1
    assert value(during, "timestep_runs", status="failed") == 0
    assert value(during, "timestep_queue_depth", queue=queued.queue) == 1, during
    # The completed model call: its latency and tokens.
    model = "gpt-4.1"
    assert value(during, "timestep_model_call_seconds_count", model=model, outcome="ok") == 1, during
    assert value(during, "timestep_tokens_total", model=model, kind="input") > 0
    assert value(during, "timestep_tokens_total", model=model, kind="output") > 0


async def test_serve_help_lists_operations_options() -> None:
    exit_code, stdout, stderr = await run_cli("serve", "--help")

    assert exit_code == 0, stderr
    for option in (
        "--metrics-port",
        "--metrics-host",
        "--log-format",
        "--keepalive-time",
        "--keepalive-timeout",
        "--shutdown-grace",
    ):
        assert option in stdout, f"{option} missing from timestep serve --help"
