"""Races on one run: many callers decide the same interruption, or resume the same run, at once.

The service serialises both on the run's row lock. Deciding: the first decision wins; a repeat
of it returns the decided interruption unchanged, the opposite decision is FAILED_PRECONDITION
naming the winner. Resuming: one call queues the next segment, the rest are FAILED_PRECONDITION.
"""

from __future__ import annotations

import asyncio
from typing import Final

import grpc
from timestep_client import InterruptionStatus, Run, RunStatus, TimestepClient
from timestep_client.v1 import runs_pb2

from tests.adversarial.conftest import CHANNELS
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.helpers import EMAIL_ARGS, WAIT, collect_events, of_kind, sequences, statuses

CALLERS: Final = 20
RESUMERS: Final = 10


async def paused_run(client: TimestepClient, fake: FakeOpenAI) -> Run:
    fake.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run("assistant", "Email Bob that I'm running late.", wait=True, timeout=WAIT)
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED, run
    return run


async def decide(
    client: TimestepClient, run: Run, caller: int
) -> runs_pb2.Interruption | grpc.aio.AioRpcError:
    """Even callers approve, odd ones reject (each with its own message)."""
    interruption_id = run.interruptions[0].id
    try:
        if caller % 2 == 0:
            return await client.approve(run.id, interruption_id)
        return await client.reject(run.id, interruption_id, message=f"no, says caller {caller}")
    except grpc.aio.AioRpcError as error:
        return error


async def test_concurrent_approvals_and_rejections_record_exactly_one_decision_that_every_caller_sees(
    clients: list[TimestepClient], fake_openai: FakeOpenAI
) -> None:
    client = clients[0]
    run = await paused_run(client, fake_openai)

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(decide(clients[i % CHANNELS], run, i) for i in range(CALLERS))), WAIT
    )

    [stored] = (await client.get_run(run.id)).interruptions
    assert stored.status != InterruptionStatus.INTERRUPTION_STATUS_PENDING
    winner = "approved" if stored.status == InterruptionStatus.INTERRUPTION_STATUS_APPROVED else "rejected"
    for caller, outcome in enumerate(outcomes):
        # Only a repeat of the recorded decision is accepted: approving an approved one, or
        # rejecting a rejected one with the same message (only its own caller's).
        if caller % 2 == 0:
            same = winner == "approved"
        else:
            same = winner == "rejected" and stored.message == f"no, says caller {caller}"
        if isinstance(outcome, grpc.aio.AioRpcError):
            assert outcome.code() == grpc.StatusCode.FAILED_PRECONDITION, (caller, outcome.details())
            assert f"was already {winner}" in (outcome.details() or ""), (caller, outcome.details())
            assert not same, f"caller {caller} repeated the recorded decision and was refused"
        else:
            assert outcome == stored, f"caller {caller} was told something other than the stored decision"
            assert same, f"caller {caller} made another decision than the recorded one and was told OK"
    accepted = [o for o in outcomes if not isinstance(o, grpc.aio.AioRpcError)]
    assert accepted, "the winning call itself succeeded"
    if winner == "rejected":  # exactly one rejecter sent the recorded message
        assert len(accepted) == 1
    events = await collect_events(client, run.id)
    assert [d.id for d in of_kind(events, "interruption_decided")] == [stored.id]
    assert sequences(events) == list(range(1, len(events) + 1))


async def test_concurrent_resumes_start_exactly_one_segment(
    clients: list[TimestepClient], fake_openai: FakeOpenAI
) -> None:
    client = clients[0]
    run = await paused_run(client, fake_openai)
    await client.approve(run.id, run.interruptions[0].id)
    decided = await client.get_run(run.id)
    fake_openai.script(text("Sent."))

    async def resume(caller: int) -> Run | grpc.aio.AioRpcError:
        try:
            return await clients[caller % CHANNELS].resume(run.id)
        except grpc.aio.AioRpcError as error:
            return error

    outcomes = await asyncio.wait_for(asyncio.gather(*(resume(i) for i in range(RESUMERS))), WAIT)

    resumed = [o for o in outcomes if not isinstance(o, grpc.aio.AioRpcError)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(resumed) == 1, [o.details() for o in refused]
    assert resumed[0].segment_count == 2
    for error in refused:
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
        assert "only an INTERRUPTED run can be resumed" in (error.details() or "")
    events = await collect_events(client, run.id, after_sequence=decided.last_sequence)
    assert statuses(events) == [
        RunStatus.RUN_STATUS_QUEUED,
        RunStatus.RUN_STATUS_RUNNING,
        RunStatus.RUN_STATUS_COMPLETED,
    ]
    assert {e.segment for e in events} == {2}
    finished = await client.get_run(run.id)
    assert finished.segment_count == 2
    assert finished.final_output == "Sent."
    assert len(fake_openai.requests) == 2, "one model call per segment: nothing ran twice"
