"""Load: 200 concurrent StreamRunEvents subscribers on 50 streamed runs. Every subscriber gets
every durable event of its run exactly once and in order, and memory stays bounded."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Final

from timestep_client import RunEvent, RunStatus, TimestepClient

from tests.adversarial.conftest import CHANNELS
from timestep_testing.fakes.openai_responses import FakeOpenAI, text
from timestep_testing.helpers import collect_events, sequences

RUNS: Final = 50
SUBSCRIBERS: Final = 200
BOUND_S: Final = 60.0
ANSWER: Final = " ".join(f"word{i}" for i in range(60))  # 60 streamed deltas per run
# Growth of the test process (service, fakes and subscribers all live in it) we call bounded.
MEMORY_BOUND_MB: Final = 400


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def test_200_subscribers_on_50_streamed_runs_get_every_durable_event_exactly_once(
    clients: list[TimestepClient], fake_openai: FakeOpenAI, record_property: Callable[[str, object], None]
) -> None:
    client = clients[0]
    release = asyncio.Event()
    fake_openai.script(*(text(ANSWER, hold=release) for _ in range(RUNS)))
    runs = [await client.create_run("assistant", f"Say 60 words, #{i}.") for i in range(RUNS)]
    rss_before = rss_mb()

    async def subscribe(index: int) -> tuple[str, list[RunEvent]]:
        run_id = runs[index % RUNS].id
        return run_id, await collect_events(clients[index % CHANNELS], run_id, timeout=BOUND_S)

    subscribers = [asyncio.create_task(subscribe(i)) for i in range(SUBSCRIBERS)]
    # Every run is in flight (its model call held) before the answers stream to 200 readers.
    await fake_openai.wait_for_requests(RUNS, timeout=BOUND_S)
    release.set()
    received = await asyncio.wait_for(asyncio.gather(*subscribers), BOUND_S)

    growth = peak_rss_mb() - rss_before  # an upper bound: the peak may predate this test
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB; at most {growth:.0f} MiB above the start of the load")
    record_property("peak_rss_mib", round(peak_rss_mb()))
    record_property("rss_growth_bound_mib", round(growth))
    assert growth < MEMORY_BOUND_MB
    stored = {run.id: await collect_events(client, run.id) for run in runs}
    for run_id, events in stored.items():
        assert events[-1].status_changed.status == RunStatus.RUN_STATUS_COMPLETED, run_id
        assert sequences(events) == list(range(1, len(sequences(events)) + 1))
    for run_id, events in received:
        durable = [e for e in events if e.sequence > 0]
        assert durable == [e for e in stored[run_id] if e.sequence > 0], f"a subscriber of {run_id} differs"
