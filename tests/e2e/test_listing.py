"""Listing runs (filters, newest first, page tokens) and pending interruptions across runs.

The database is shared by every test, so each test works inside its own session id and looks
for its own ids rather than assuming a table is empty.
"""

from __future__ import annotations

import grpc
from timestep_client import Interruption, InterruptionStatus, RunStatus, TimestepClient

from timestep_testing.fakes.openai_responses import FakeOpenAI, function_call, text, tool_call, tool_calls
from timestep_testing.helpers import EMAIL_ARGS, expect_rpc_error, pending, unique


async def all_pending_interruptions(client: TimestepClient) -> list[Interruption]:
    """Every page of ListInterruptions without a run_id."""
    found: list[Interruption] = []
    token = ""
    while True:
        page = await client.list_interruptions(page_size=100, page_token=token)
        found += page.interruptions
        token = page.next_page_token
        if not token:
            return found


async def test_list_runs_filters_by_session_agent_and_status_newest_first(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("session")
    fake_openai.script(text("Hi."), tool_call("send_email", EMAIL_ARGS))
    completed = await client.create_run("assistant", "Say hi", session_id=session, wait=True)
    interrupted = await client.create_run("assistant", "Email Bob", session_id=session, wait=True)
    # The paused run holds the session: the next one waits QUEUED behind it (ENQUEUE).
    billing = await client.create_run("billing", "Any refunds?", session_id=session)
    assert interrupted.status == RunStatus.RUN_STATUS_INTERRUPTED
    assert billing.status == RunStatus.RUN_STATUS_QUEUED

    in_session = await client.list_runs(session_id=session)
    assert [r.id for r in in_session.runs] == [billing.id, interrupted.id, completed.id]
    assert in_session.next_page_token == ""

    by_agent = await client.list_runs(session_id=session, agent="billing")
    assert [r.id for r in by_agent.runs] == [billing.id]

    by_status = await client.list_runs(session_id=session, status=RunStatus.RUN_STATUS_INTERRUPTED)
    assert [r.id for r in by_status.runs] == [interrupted.id]
    assert len(by_status.runs[0].interruptions) == 1

    by_all = await client.list_runs(
        session_id=session, agent="assistant", status=RunStatus.RUN_STATUS_COMPLETED
    )
    assert [r.id for r in by_all.runs] == [completed.id]

    assert (await client.list_runs(session_id=unique("session"))).runs == []

    any_session = await client.list_runs(agent="billing", page_size=500)
    assert {r.agent for r in any_session.runs} == {"billing"}
    assert billing.id in {r.id for r in any_session.runs}
    await client.cancel(billing.id)  # an active run would count against later tests' limits


async def test_list_runs_pages_chain_through_every_run_exactly_once(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("session")
    fake_openai.script(*(text(f"Answer {n}.") for n in range(5)))
    created = [
        (await client.create_run("assistant", f"Question {n}", session_id=session, wait=True)).id
        for n in range(5)
    ]

    pages: list[list[str]] = []
    tokens: list[str] = []
    token = ""
    while True:
        page = await client.list_runs(session_id=session, page_size=2, page_token=token)
        pages.append([r.id for r in page.runs])
        tokens.append(page.next_page_token)
        token = page.next_page_token
        if not token or len(pages) > 5:
            break

    assert [len(p) for p in pages] == [2, 2, 1]
    assert tokens[0]
    assert tokens[1] != tokens[0]
    assert tokens[2] == ""
    assert [run_id for page in pages for run_id in page] == created[::-1]


async def test_list_runs_rejects_a_page_token_it_did_not_issue_for_these_filters(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("session")
    fake_openai.script(text("One."), text("Two."))
    for n in range(2):
        await client.create_run("assistant", f"Question {n}", session_id=session, wait=True)
    token = (await client.list_runs(session_id=session, page_size=1)).next_page_token
    assert token

    await expect_rpc_error(
        client.list_runs(session_id=session, page_token="forged-token"), grpc.StatusCode.INVALID_ARGUMENT
    )
    await expect_rpc_error(
        client.list_runs(session_id=session, page_token=token + "x"), grpc.StatusCode.INVALID_ARGUMENT
    )
    await expect_rpc_error(
        client.list_runs(session_id=unique("session"), page_token=token), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert len((await client.list_runs(session_id=session, page_size=1, page_token=token)).runs) == 1


async def test_list_interruptions_without_a_run_lists_pending_calls_of_every_run_but_not_decided_ones(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(
        tool_calls(
            function_call("send_email", {**EMAIL_ARGS, "to": "bob@example.com"}),
            function_call("send_email", {**EMAIL_ARGS, "to": "eve@example.com"}),
        ),
        tool_call("send_email", EMAIL_ARGS),
    )
    two = await client.create_run("assistant", "Email Bob and Eve", wait=True)
    one = await client.create_run("assistant", "Email Bob", wait=True)
    decided, still_pending = pending(two)
    await client.approve(two.id, decided.id)

    listed = await all_pending_interruptions(client)

    ids = [i.id for i in listed]
    assert still_pending.id in ids
    assert pending(one)[0].id in ids
    assert decided.id not in ids
    assert len(ids) == len(set(ids)), "each pending interruption is listed once across pages"
    mine = [i for i in listed if i.run_id in (one.id, two.id)]
    assert {i.status for i in mine} == {InterruptionStatus.INTERRUPTION_STATUS_PENDING}


async def test_a_runs_interruptions_come_in_pages_of_page_size(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(
        tool_calls(
            function_call("send_email", {**EMAIL_ARGS, "to": "bob@example.com"}),
            function_call("send_email", {**EMAIL_ARGS, "to": "eve@example.com"}),
        )
    )
    run = await client.create_run("assistant", "Email Bob and Eve", wait=True)
    assert len(run.interruptions) == 2, run

    first = await client.list_interruptions(run.id, page_size=1)
    second = await client.list_interruptions(run.id, page_size=1, page_token=first.next_page_token)

    assert len(first.interruptions) == 1
    assert first.next_page_token
    assert len(second.interruptions) == 1
    assert not second.next_page_token
    paged = [*first.interruptions, *second.interruptions]
    assert sorted(i.id for i in paged) == sorted(i.id for i in run.interruptions)
    whole = await client.list_interruptions(run.id, page_size=10_000)  # treated as 500
    assert [i.id for i in whole.interruptions] == [i.id for i in paged]
    assert not whole.next_page_token
    # A token is bound to its run.
    other = await client.create_run("assistant", "Hi", wait=True)
    await expect_rpc_error(
        client.list_interruptions(other.id, page_token=first.next_page_token),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
