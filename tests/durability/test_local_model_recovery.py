"""`kill -9` while the local model is generating, restart with the same executor id, and the run
completes on the real model: the approved tool ran once, and only the call cut off is made again."""

from __future__ import annotations

import os
import signal
from typing import Final

import pytest
from timestep_client import RunStatus

from tests.durability.conftest import follow_to_stop
from timestep_testing.harness import ServeProcess, connect, free_port
from timestep_testing.helpers import EventStream, collect_events, is_kind, kinds, of_kind, pending

# A tiny model on two busy cores, and a restart that loads it again.
LOCAL_WAIT: Final = 240.0


@pytest.mark.local_model
@pytest.mark.timeout(900)
async def test_kill_while_the_local_model_streams_repeats_only_that_call(durable_database: str) -> None:
    prefixes = ("OPENAI_", "TIMESTEP_", "OLLAMA_", "FIRECRAWL_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    # No HTTP port: 8080 may be taken on the machine.
    env.update(PG_CONNECTION_URI=durable_database, TIMESTEP_HTTP_PORT="0")
    server = ServeProcess(
        "local-crash",
        free_port(),
        ["--host", "127.0.0.1", "--local-model-threads", "2"],
        env,
        startup_timeout_s=LOCAL_WAIT,
    )
    await server.start()
    try:
        async with connect(server.address) as client:
            run = await client.create_run("assistant", "Email bob@example.com that I am late")
            first = await follow_to_stop(client, run.id, timeout=LOCAL_WAIT)
            await client.approve(run.id, pending(await client.get_run(run.id))[0].id)
            await client.resume(run.id)
            async with EventStream(client, run.id, max(e.sequence for e in first)) as stream:
                await stream.wait_for(is_kind("text_delta"), LOCAL_WAIT)  # the second call is generating

                await server.end(signal.SIGKILL)
            await server.start()

            await follow_to_stop(client, run.id, max(e.sequence for e in first), timeout=LOCAL_WAIT)
            done = await client.get_run(run.id)
            stored = await collect_events(client, run.id, timeout=LOCAL_WAIT)
    finally:
        await server.end(signal.SIGKILL)

    assert done.status == RunStatus.RUN_STATUS_COMPLETED, (done.error, server.log)
    assert done.final_output.strip()
    # The approved email was sent once: recovery replayed the recorded tool call.
    assert kinds(stored).count("tool_output") == 1
    assert of_kind(stored, "tool_output")[0].output.startswith("Email to ")
    # The forced call, and the answer made again after the kill (the cut-off one never finished).
    assert done.usage.requests == 2
    assert done.usage.output_tokens > 0
