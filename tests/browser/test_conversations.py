"""Conversations in the console, in a real headless Chromium: a session's runs and history are
listed, its items shown in order with the run that added each, and a person deletes it with its
runs after a confirmation that says what goes; the session and its runs are then gone from the
page and from the service, and another session is untouched. The list filters by agent; a run's
page links to its conversation; a conversation in progress is deleted only when the person
chooses to cancel its running run; a conversation's page fits a phone; a long history shows a
page at a time.
"""

from __future__ import annotations

import asyncio
import os
from typing import Final

import grpc
import pytest
from timestep.app import TimestepService
from timestep_client import RunStatus, TimestepClient

from tests.browser.conftest import ACME_KEY
from tests.browser.console_page import SCREENSHOTS, ConsolePage, browser_missing, in_browser
from timestep_testing.fakes.openai_responses import FakeOpenAI, gate, text, tool_call
from timestep_testing.helpers import EMAIL_ARGS, WAIT, error_info, expect_rpc_error, unique

GREETING: Final = "Hello Ada, nice to meet you."
SENT: Final = "Sent: Bob knows you are late."
# The history the two runs build, as the page names its items, oldest first.
HISTORY: Final = ["User", "Assistant", "User", "Tool call send_email", "Tool output", "Assistant"]

if reason := browser_missing():
    pytestmark = pytest.mark.skipif(not os.environ.get("CI"), reason=reason)


async def test_a_person_reads_a_conversation_and_deletes_it_with_its_runs(
    service: TimestepService, page: ConsolePage, fake_openai: FakeOpenAI
) -> None:
    conversation, other = unique("ada"), unique("other")
    fake_openai.script(
        text("Unrelated."),
        text(GREETING),
        tool_call("send_email", EMAIL_ARGS, call_id=unique("call")),
        text(SENT),
    )
    async with TimestepClient(f"127.0.0.1:{service.port}", api_key=ACME_KEY) as acme:
        kept = await acme.create_run("assistant", "Something else", session_id=other, wait=True, timeout=WAIT)
        first = await acme.create_run(
            "assistant", "My name is Ada.", session_id=conversation, wait=True, timeout=WAIT
        )
        second = await acme.create_run(
            "assistant", "Email Bob that I am late", session_id=conversation, wait=True, timeout=WAIT
        )
        await acme.approve(second.id, second.interruptions[0].id)
        second = await acme.resume(second.id, wait=True, timeout=WAIT)
        assert (first.status, second.status) == (
            RunStatus.RUN_STATUS_COMPLETED,
            RunStatus.RUN_STATUS_COMPLETED,
        )

        # The list: newest activity first, with item and run counts.
        await in_browser(page.open, "key")
        await in_browser(page.use_key, ACME_KEY)
        await in_browser(page.click, "nav a[href='#/sessions']")
        await in_browser(page.wait_for, f"tr[data-session='{other}']")
        listed = await in_browser(page.attributes, "tbody tr", "data-session")
        assert listed.index(conversation) < listed.index(other)
        row = await in_browser(page.texts, f"tr[data-session='{conversation}'] td")
        assert row[1:4] == ["assistant", "6", "2"]

        # The conversation: its items in order, each linked to the run that added it; its runs,
        # newest first.
        await in_browser(page.click, f"tr[data-session='{conversation}'] a")
        await in_browser(page.wait_for_text, "main h1", f"Conversation {conversation}")
        await in_browser(page.wait_for_count, "ol.history li[data-item]", len(HISTORY))
        assert await in_browser(page.texts, "ol.history li .kind") == HISTORY
        said = await in_browser(page.texts, "ol.history li .said")
        assert [said[0], said[1], said[5]] == ["My name is Ada.", GREETING, SENT]
        assert '"to": "bob@example.com"' in said[3]
        assert (
            await in_browser(page.attributes, "ol.history li", "data-run") == [first.id] * 2 + [second.id] * 4
        )
        await in_browser(page.wait_for_count, "main tbody tr", 2)
        assert await in_browser(page.attributes, "main tbody tr td:first-child a", "href") == [
            f"{page.base_url}/#/runs/{second.id}",
            f"{page.base_url}/#/runs/{first.id}",
        ]
        await in_browser(page.screenshot, SCREENSHOTS / "console-conversation.png")

        # Delete: the confirmation says what goes, and changes with "also its runs".
        await in_browser(page.click, "button[aria-expanded]")
        confirm = "form.confirm"
        await in_browser(page.wait_for_text, confirm, "This deletes its history: 6 items")
        assert "Its 2 runs stay" in str(await in_browser(page.text, confirm))
        await in_browser(page.click, f"{confirm} input[name=runs]")
        await in_browser(page.wait_for_text, confirm, "and 2 runs of it with their events")
        await in_browser(page.click, f"{confirm} button.danger")

        # Back on the list, with a notice; gone from the page and from the service.
        await in_browser(
            page.wait_for_text, "main p.done", f"Deleted conversation {conversation}: 6 items and 2 runs."
        )
        await in_browser(page.wait_for, f"tr[data-session='{other}']")
        assert conversation not in await in_browser(page.attributes, "tbody tr", "data-session")
        error = await expect_rpc_error(acme.get_session(conversation), grpc.StatusCode.NOT_FOUND)
        assert error_info(error).reason == "SESSION_NOT_FOUND"
        for run in (first, second):
            await expect_rpc_error(acme.get_run(run.id), grpc.StatusCode.NOT_FOUND)
        assert (await acme.get_session(other)).item_count == 2

    # Its page is gone too: the service's NOT_FOUND, shown as the console shows errors.
    await in_browser(page.go, f"sessions/{conversation}")
    await in_browser(page.wait_for_text, "#notice", f"NotFound: No session has id '{conversation}'")
    # The agent filter: no conversation has a run of billing.
    await in_browser(page.go, "sessions?agent=billing")
    await in_browser(page.wait_for_text, "tbody", "No conversations match.")
    assert await in_browser(page.attributes, "input[name=agent]", "value") == ["billing"]

    # A run's page links to its conversation.
    await in_browser(page.go, f"runs/{kept.id}")
    await in_browser(page.click, f"main a[href='#/sessions/{other}']")
    await in_browser(page.wait_for_text, "main h1", f"Conversation {other}")
    await in_browser(page.wait_for_count, "ol.history li[data-item]", 2)


async def test_a_conversation_in_progress_is_deleted_once_the_person_cancels_its_run(
    service: TimestepService, page: ConsolePage, fake_openai: FakeOpenAI
) -> None:
    conversation, release = unique("busy"), asyncio.Event()
    fake_openai.script(gate(text("too late"), release))
    async with TimestepClient(f"127.0.0.1:{service.port}", api_key=ACME_KEY) as acme:
        run = await acme.create_run("assistant", "Think slowly", session_id=conversation)
        await fake_openai.wait_for_requests(1)
        try:
            await in_browser(page.open, "key")
            await in_browser(page.use_key, ACME_KEY)
            await in_browser(page.go, f"sessions/{conversation}")
            await in_browser(page.click, "button[aria-expanded]")
            confirm = "form.confirm"
            await in_browser(page.click, f"{confirm} input[name=runs]")
            # Without cancelling, the service refuses, naming the run; nothing is deleted.
            await in_browser(page.click, f"{confirm} button.danger")
            await in_browser(page.wait_for_text, "#notice", f"FailedPrecondition: Session '{conversation}'")
            assert run.id in str(await in_browser(page.text, "#notice"))
            assert (await acme.get_run(run.id)).status == RunStatus.RUN_STATUS_RUNNING

            await in_browser(page.click, f"{confirm} input[name=force]")
            await in_browser(page.wait_for_text, confirm, "Its 1 queued or running run is cancelled first.")
            await in_browser(page.click, f"{confirm} button.danger")
            await in_browser(page.wait_for_text, "main p.done", f"Deleted conversation {conversation}:")
            assert "and 1 run." in str(await in_browser(page.text, "main p.done"))
        finally:
            release.set()
        await expect_rpc_error(acme.get_session(conversation), grpc.StatusCode.NOT_FOUND)
        await expect_rpc_error(acme.get_run(run.id), grpc.StatusCode.NOT_FOUND)


async def test_a_conversation_fits_a_phone(service: TimestepService, fake_openai: FakeOpenAI) -> None:
    phone = await asyncio.to_thread(ConsolePage, f"http://127.0.0.1:{service.http_port}", 390, 844)
    try:
        conversation = unique("phone")
        fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id=unique("call")), text(SENT))
        async with TimestepClient(f"127.0.0.1:{service.port}", api_key=ACME_KEY) as acme:
            run = await acme.create_run(
                "assistant", "Email Bob", session_id=conversation, wait=True, timeout=WAIT
            )
            await acme.approve(run.id, run.interruptions[0].id)
            await acme.resume(run.id, wait=True, timeout=WAIT)
        await in_browser(phone.open, "key")
        await in_browser(phone.use_key, ACME_KEY)
        await in_browser(phone.go, f"sessions/{conversation}")
        await in_browser(phone.wait_for_count, "ol.history li[data-item]", 4)
        await in_browser(phone.wait_for, "main tbody tr")
        width = await in_browser(phone.driver.execute_script, "return document.documentElement.scrollWidth")
        assert width == 390, "nothing is wider than the phone's screen"
    finally:
        await asyncio.to_thread(phone.close)


async def test_a_long_conversations_history_shows_a_page_at_a_time(
    service: TimestepService, page: ConsolePage, fake_openai: FakeOpenAI
) -> None:
    conversation = unique("long")
    fake_openai.script(text(GREETING))
    said = [{"role": "user", "content": f"Message {n}"} for n in range(1, 251)]
    async with TimestepClient(f"127.0.0.1:{service.port}", api_key=ACME_KEY) as acme:
        await acme.create_run("assistant", input_items=said, session_id=conversation, wait=True, timeout=WAIT)
        assert (await acme.get_session(conversation)).item_count == 251
    await in_browser(page.open, "key")
    await in_browser(page.use_key, ACME_KEY)
    await in_browser(page.go, f"sessions/{conversation}")

    await in_browser(page.wait_for_text, ".more [role=status]", "Showing the first 200 of 251 items.")
    first_page = await in_browser(page.texts, "ol.history li .said")
    assert first_page == [f"Message {n}" for n in range(1, 201)]

    await in_browser(page.click, ".more button.show-more")

    await in_browser(page.wait_for_count, "ol.history li[data-item]", 251)
    history = await in_browser(page.texts, "ol.history li .said")
    assert history == [*(f"Message {n}" for n in range(1, 251)), GREETING]
    assert await in_browser(page.count, ".more *") == 0, "nothing more to show"
