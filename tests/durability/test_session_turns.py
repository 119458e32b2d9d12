"""A session's queue of runs survives the replica that runs it: killed with SIGKILL while its
session's active run is mid-call and others wait their turn, the other replica recovers the
active run and then runs the waiting ones, in order, each exactly once."""

from __future__ import annotations

import asyncio
import json

from timestep_client import RunStatus

from tests.durability.conftest import WAIT, LaunchReplica, follow_to_stop
from timestep_testing.fakes.openai_responses import FakeOpenAI, gate, text
from timestep_testing.helpers import conversation, unique

WAITING = 3


async def test_enqueued_runs_of_a_killed_replicas_session_all_complete_in_order_once(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    session, never = unique("session"), asyncio.Event()
    fake_openai.script(gate(text("lost with A"), never), *(text(f"answer {n}") for n in range(WAITING + 1)))
    a = await launch("A")
    async with a.client() as on_a:
        first = await on_a.create_run("assistant", "message 0", session_id=session)
        await fake_openai.wait_for_requests(1, WAIT)
        waiting = [
            await on_a.create_run("assistant", f"message {n}", session_id=session)
            for n in range(1, WAITING + 1)
        ]
        assert {(await on_a.get_run(run.id)).status for run in waiting} == {RunStatus.RUN_STATUS_QUEUED}
    b = await launch("B", "--replica-timeout", "2")

    await a.kill()

    async with b.client() as on_b:
        for run in (first, *waiting):
            await follow_to_stop(on_b, run.id)
        finals = [await on_b.get_run(run.id) for run in (first, *waiting)]
        items = [json.loads(item.item_json) async for item in on_b.session_items(session)]

    assert [run.status for run in finals] == [RunStatus.RUN_STATUS_COMPLETED] * (WAITING + 1)
    assert [run.final_output for run in finals] == [f"answer {n}" for n in range(WAITING + 1)]
    # A's call died with A; B made it again, then one call per waiting run, in arrival order.
    assert len(fake_openai.requests) == WAITING + 2
    for n, request in enumerate(fake_openai.requests[1:]):
        said = [content for role, content in conversation(request) if role == "user"]
        assert said == [f"message {m}" for m in range(n + 1)]
    expected = []
    for n in range(WAITING + 1):
        expected += [("user", f"message {n}"), ("assistant", f"answer {n}")]
    assert [(item["role"], _text(item)) for item in items] == expected


def _text(item: dict[str, object]) -> str:
    content = item["content"]
    if isinstance(content, str):
        return content
    assert isinstance(content, list)
    return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
