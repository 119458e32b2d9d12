"""SessionService: a conversation listed, read back item by item with the run that added each,
and paged like every other list."""

from __future__ import annotations

import base64
import json

import grpc
from timestep_client import RunStatus, TimestepClient

from timestep_testing.fakes.openai_responses import FakeOpenAI, text
from timestep_testing.helpers import error_info, expect_rpc_error, unique


async def test_a_sessions_items_come_back_in_order_with_the_run_that_added_each(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("session")
    fake_openai.script(text("Nice to meet you, Ada. 👋"), text("Your name is Ada."))
    first = await client.create_run("assistant", "My name is Ada.", session_id=session, wait=True)
    second = await client.create_run("assistant", "What is my name?", session_id=session, wait=True)
    assert (first.status, second.status) == (RunStatus.RUN_STATUS_COMPLETED, RunStatus.RUN_STATUS_COMPLETED)

    items = [item async for item in client.session_items(session)]

    said = [(item.run_id, json.loads(item.item_json)) for item in items]
    assert [(run_id, data.get("role"), _text(data)) for run_id, data in said] == [
        (first.id, "user", "My name is Ada."),
        (first.id, "assistant", "Nice to meet you, Ada. 👋"),
        (second.id, "user", "What is my name?"),
        (second.id, "assistant", "Your name is Ada."),
    ]
    assert [item.id for item in items] == sorted(item.id for item in items)
    got = await client.get_session(session)
    assert (got.id, got.item_count, got.run_count, list(got.agents)) == (session, 4, 2, ["assistant"])
    assert got.last_activity_time.ToDatetime() >= got.create_time.ToDatetime()


async def test_session_items_page_in_order_and_a_forged_token_is_refused(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("session")
    fake_openai.script(text("one"), text("two"), text("three"))
    for message in ("a", "b", "c"):
        await client.create_run("assistant", message, session_id=session, wait=True)

    pages, token = [], ""
    while True:
        page = await client.list_session_items(session, page_size=4, page_token=token)
        pages.append([json.loads(item.item_json) for item in page.items])
        token = page.next_page_token
        if not token:
            break

    assert [len(page) for page in pages] == [4, 2]
    assert [_text(item) for page in pages for item in page] == ["a", "one", "b", "two", "c", "three"]
    forged = base64.urlsafe_b64encode(json.dumps({"s": "x", "a": ["0"]}).encode()).decode()
    error = await expect_rpc_error(
        client.list_session_items(session, page_token=forged), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "page_token" in (error.details() or "")
    first_page = await client.list_session_items(session, page_size=4)
    await expect_rpc_error(  # a token of another session's listing
        client.list_session_items(unique("other"), page_token=first_page.next_page_token),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_sessions_are_listed_newest_activity_first_and_filtered_by_agent(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    older, newer, billing = unique("older"), unique("newer"), unique("billing")
    fake_openai.script(text("1"), text("2"), text("3"), text("4"))
    await client.create_run("assistant", "hi", session_id=older, wait=True)
    await client.create_run("assistant", "hi", session_id=newer, wait=True)
    await client.create_run("billing", "refund?", session_id=billing, wait=True)
    await client.create_run("assistant", "again", session_id=older, wait=True)  # now the newest

    listed = [s.id for s in (await client.list_sessions(page_size=500)).sessions]
    assert [s for s in listed if s in (older, newer, billing)] == [older, billing, newer]
    by_billing = [s.id for s in (await client.list_sessions(agent="billing", page_size=500)).sessions]
    assert billing in by_billing
    assert older not in by_billing
    assert newer not in by_billing

    first = await client.list_sessions(page_size=1)
    second = await client.list_sessions(page_size=1, page_token=first.next_page_token)
    assert first.sessions[0].id == listed[0]
    assert second.sessions[0].id == listed[1]


async def test_an_unknown_or_invalid_session_is_refused_with_its_reason(client: TimestepClient) -> None:
    missing = unique("missing")
    for call in (client.get_session(missing), client.list_session_items(missing)):
        error = await expect_rpc_error(call, grpc.StatusCode.NOT_FOUND)
        assert error_info(error).reason == "SESSION_NOT_FOUND"
        assert missing in (error.details() or "")
    await expect_rpc_error(client.get_session(""), grpc.StatusCode.INVALID_ARGUMENT)
    await expect_rpc_error(client.get_session("a/b"), grpc.StatusCode.INVALID_ARGUMENT)
    await expect_rpc_error(client.list_sessions(page_size=-1), grpc.StatusCode.INVALID_ARGUMENT)


def _text(item: dict[str, object]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    assert isinstance(content, list), item
    return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
