"""The web console in a real headless Chromium: a paused run appears in the inbox without a
reload, a person approves it in the page, the run page streams the answer's tokens as the model
generates them and ends COMPLETED; another is rejected with a message and the model's reply
shows; another tenant's key sees neither, and starts a run of its own from the form. An approval
counts down to its expiry and, once it passes, says so and can no longer be decided; a person
edits a call's arguments (refused in the page when not JSON, by the service when they do not fit
the tool) and the tool runs with the edit. A run page left open on a paused run shows its
approval expiring and follows the run resuming by itself, without a reload.
Screenshots go to $TIMESTEP_SCREENSHOTS (default build/screenshots; `make screenshots` writes the
README's, in docs/).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from datetime import timedelta
from typing import Final

import pytest
from timestep.app import TimestepService
from timestep.settings import ApprovalSettings
from timestep_client import InterruptionStatus, RunStatus, TimestepClient

from tests.browser.conftest import ACME_KEY, GLOBEX_KEY
from tests.browser.console_page import SCREENSHOTS, ConsolePage, browser_missing, in_browser
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.helpers import EMAIL_ARGS, WAIT, function_call_outputs, unique

ANSWER: Final = "Done: Bob knows you are running late."
REPLY: Final = "Understood, I did not send the email."

if reason := browser_missing():
    pytestmark = pytest.mark.skipif(not os.environ.get("CI"), reason=reason)


async def test_a_person_approves_and_rejects_in_the_console_and_follows_the_answer(
    service: TimestepService, page: ConsolePage, fake_openai: FakeOpenAI
) -> None:
    address = f"127.0.0.1:{service.port}"
    await in_browser(page.open, "inbox")
    await in_browser(page.wait_for_text, "main [role=alert]", "needs an API key")
    await in_browser(page.use_key, ACME_KEY)
    await in_browser(page.wait_for_text, "main [role=status]", "No approvals are waiting")

    answer, rest_of_answer = asyncio.Event(), asyncio.Event()
    fake_openai.script(
        tool_call("send_email", EMAIL_ARGS, call_id=unique("call")),
        text(ANSWER, hold=answer, pause_after_first_delta=rest_of_answer),
    )
    async with TimestepClient(address, api_key=ACME_KEY) as acme:
        run = await acme.create_run(
            "assistant",
            "Email Bob that I am late",
            approval_timeout=timedelta(minutes=30),
            wait=True,
            timeout=WAIT,
        )
        assert run.status == RunStatus.RUN_STATUS_INTERRUPTED

        # Live: the inbox was open before the run paused, and was not reloaded.
        card = f"article[data-run='{run.id}']"
        await in_browser(page.wait_for_text, f"{card} h2", "assistant wants to call send_email")
        assert '"to": "bob@example.com"' in str(await in_browser(page.text, f"{card} pre.arguments"))
        assert re.fullmatch(
            r"Expires in (29 min \d+ s|30 min 0 s)", str(await in_browser(page.text, f"{card} .expiry"))
        )
        await in_browser(page.screenshot, SCREENSHOTS / "console.png")

        await in_browser(page.click, f"{card} button.primary")
        await in_browser(page.wait_for_text, "main h1", run.id)
        # The page follows the resumed run (QUEUED, RUNNING, INTERRUPTED, QUEUED, RUNNING so far):
        # now the model starts answering, and its first token is on the page while it is still
        # generating the rest.
        await in_browser(page.wait_for_count, "li[data-kind=statusChanged]", 5)
        answer.set()
        await in_browser(page.wait_for_text, "li.live", "Done:")
        assert (await acme.get_run(run.id)).status == RunStatus.RUN_STATUS_RUNNING
        await in_browser(page.screenshot, SCREENSHOTS / "console-streaming.png")
        rest_of_answer.set()
        await in_browser(page.wait_for_text, "#run-status", "COMPLETED")
        await in_browser(page.wait_for_text, "#final-output", ANSWER)
        await in_browser(page.screenshot, SCREENSHOTS / "console-run.png")

        # Reject with a message: the model is told, and its reply shows.
        fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id=unique("call")), text(REPLY))
        await in_browser(page.go, "inbox")
        rejected = await acme.create_run("assistant", "Email Bob again", wait=True, timeout=WAIT)
        card = f"article[data-run='{rejected.id}']"
        await in_browser(page.type, f"{card} input[type=text]", "Not now, I will call him.")
        await in_browser(page.click, f"{card} button.reject")
        await in_browser(page.wait_for_text, "#run-status", "COMPLETED")
        await in_browser(page.wait_for_text, "#final-output", REPLY)
        told = function_call_outputs(fake_openai.requests[-1])
        assert list(told.values()) == ["Not now, I will call him."]

    # Another tenant's key: neither run, in the inbox or the run list.
    await in_browser(page.use_key, GLOBEX_KEY)
    await in_browser(page.wait_for_text, "main [role=status]", "No approvals are waiting")
    await in_browser(page.go, "runs")
    await in_browser(page.wait_for_text, "tbody", "No runs match.")
    assert await in_browser(page.count, f"a[href='#/runs/{run.id}']") == 0

    # The new-run form starts a run of that tenant, whose page follows it; the run list finds it.
    fake_openai.script(text("Hello from globex."))
    await in_browser(page.go, "new")
    await in_browser(page.wait_for, "select[name=agent] option[value=assistant]")
    await in_browser(page.type, "textarea[name=input]", "Say hello")
    await in_browser(page.click, "form button[type=submit]")
    await in_browser(page.wait_for_text, "#final-output", "Hello from globex.")
    await in_browser(page.go, "runs?status=COMPLETED")
    await in_browser(page.wait_for_text, "tbody", "COMPLETED")
    assert await in_browser(page.count, "tbody tr") == 1


async def test_the_inbox_fits_a_phone(service: TimestepService, fake_openai: FakeOpenAI) -> None:
    phone = await asyncio.to_thread(ConsolePage, f"http://127.0.0.1:{service.http_port}", 390, 844)
    try:
        fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id=unique("call")))
        async with TimestepClient(f"127.0.0.1:{service.port}", api_key=ACME_KEY) as acme:
            run = await acme.create_run("assistant", "Email Bob that I am late", wait=True, timeout=WAIT)
        await in_browser(phone.open, "key")
        await in_browser(phone.use_key, ACME_KEY)
        await in_browser(phone.wait_for_text, f"article[data-run='{run.id}'] h2", "send_email")
        width = await in_browser(phone.driver.execute_script, "return document.documentElement.scrollWidth")
        assert width == 390, "nothing is wider than the phone's screen"
        await in_browser(phone.screenshot, SCREENSHOTS / "console-phone.png")
    finally:
        await asyncio.to_thread(phone.close)


async def signed_in(page: ConsolePage) -> None:
    await in_browser(page.open, "key")
    await in_browser(page.use_key, ACME_KEY)


# The page's own countdown: a service that looks for expired approvals only hourly leaves the
# card to it (a service that expires the approval replaces the card by its decision).
@pytest.mark.parametrize(
    "service", [{"approvals": ApprovalSettings(check_interval_s=3600)}], ids=["hourly-expiry"], indirect=True
)
async def test_an_approval_counts_down_to_its_expiry_and_then_cannot_be_decided(
    service: TimestepService, page: ConsolePage, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id=unique("call")))
    await signed_in(page)
    async with TimestepClient(f"127.0.0.1:{service.port}", api_key=ACME_KEY) as acme:
        run = await acme.create_run(
            "assistant", "Email Bob", approval_timeout=timedelta(seconds=8), wait=True, timeout=WAIT
        )
    card = f"article[data-run='{run.id}']"
    await in_browser(page.go, f"runs/{run.id}")

    await in_browser(page.wait_for_text, f"{card} .expiry", "Expires in")
    assert await in_browser(page.attribute, f"{card} .expiry", "aria-live") is None, (
        "not announced every second"
    )
    assert await in_browser(page.enabled, f"{card} button.primary")
    await in_browser(page.wait_for_text, f"{card} .expiry", "Expired")
    await in_browser(page.wait_for_text, f"{card} [role=alert]", "Nobody decided in time")
    for control in ("button.primary", "button.reject", ".editor button", "input[type=text]"):
        assert not await in_browser(page.enabled, f"{card} {control}"), f"{control} still enabled"
    # Its approval is past due: cancelled, no later test's service expires it meanwhile.
    async with TimestepClient(f"127.0.0.1:{service.port}", api_key=ACME_KEY) as acme:
        await acme.cancel(run.id, "the test is over")


async def test_a_person_edits_a_calls_arguments_and_the_tool_runs_with_them(
    service: TimestepService, page: ConsolePage, fake_openai: FakeOpenAI
) -> None:
    edited = {"to": "carol@example.com", "subject": "Running late", "body": "See you at 10:30."}
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_edit"), text("Sent to Carol."))
    await signed_in(page)
    async with TimestepClient(f"127.0.0.1:{service.port}", api_key=ACME_KEY) as acme:
        run = await acme.create_run("assistant", "Email Bob", wait=True, timeout=WAIT)
        card = f"article[data-run='{run.id}']"
        editor = f"{card} textarea.arguments-editor"
        await in_browser(page.wait_for, f"{card} pre.arguments")
        assert not await in_browser(page.visible, editor), "the editor opens only when asked"
        await in_browser(page.click, f"{card} .editor button")
        assert not await in_browser(page.visible, f"{card} pre.arguments")
        assert json.loads(str(await in_browser(page.attribute, editor, "value"))) == EMAIL_ARGS

        await in_browser(page.replace, editor, '{"to": "carol@example.com",')
        await in_browser(page.click, f"{card} button.primary")
        await in_browser(page.wait_for_text, f"{card} .problems", "Not valid JSON")
        assert await in_browser(page.attribute, editor, "aria-invalid") == "true"

        await in_browser(page.replace, editor, json.dumps({**edited, "to": 42}))
        await in_browser(page.click, f"{card} button.primary")
        await in_browser(page.wait_for_text, f"{card} .problems", "to: 42 is not of type 'string'")
        await in_browser(page.screenshot, SCREENSHOTS / "console-edit.png")
        [still] = (await acme.get_run(run.id)).interruptions
        assert still.status == InterruptionStatus.INTERRUPTION_STATUS_PENDING
        assert len(fake_openai.requests) == 1, "neither refused edit reached the model"

        await in_browser(page.replace, editor, json.dumps(edited))
        await in_browser(page.click, f"{card} button.primary")
        await in_browser(page.wait_for_text, "#run-status", "COMPLETED")
        await in_browser(page.wait_for_text, "#final-output", "Sent to Carol.")
        await in_browser(page.wait_for_text, ".decided h3", "send_email: approved with edited arguments")
        proposed = json.loads(str(await in_browser(page.text, ".decided pre.proposed")))
        approved = json.loads(str(await in_browser(page.text, ".decided pre.approved")))

    assert (proposed, approved) == (EMAIL_ARGS, edited)
    resumed = fake_openai.requests[1]
    assert function_call_outputs(resumed) == {
        "call_edit": "Email to carol@example.com with subject 'Running late' sent."
    }
    [call] = [item for item in resumed["input"] if item.get("type") == "function_call"]
    assert json.loads(call["arguments"]) == edited


async def test_deciding_on_the_run_page_follows_the_run_it_resumed(
    service: TimestepService, page: ConsolePage, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id=unique("call")), text(ANSWER))
    await signed_in(page)
    async with TimestepClient(f"127.0.0.1:{service.port}", api_key=ACME_KEY) as acme:
        run = await acme.create_run("assistant", "Email Bob", wait=True, timeout=WAIT)
    await in_browser(page.go, f"runs/{run.id}")
    await in_browser(page.wait_for_text, "#run-status", "INTERRUPTED")

    await in_browser(page.click, f"article[data-run='{run.id}'] button.primary")

    await in_browser(page.wait_for_text, "#run-status", "COMPLETED")
    await in_browser(page.wait_for_text, "#final-output", ANSWER)
    await in_browser(page.wait_for_text, ".decided h3", "send_email: approved")
    assert await in_browser(page.count, "article.interruption") == 0


async def test_a_run_page_left_open_follows_an_expiry_and_the_run_resuming_by_itself(
    service: TimestepService, page: ConsolePage, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id=unique("call")), text(REPLY))
    await signed_in(page)
    async with TimestepClient(f"127.0.0.1:{service.port}", api_key=ACME_KEY) as acme:
        run = await acme.create_run(
            "assistant",
            "Email Bob",
            approval_timeout=timedelta(seconds=5),
            auto_resume_on_expiry=True,
            wait=True,
            timeout=WAIT,
        )
    await in_browser(page.go, f"runs/{run.id}")
    # Paused when the page opened: its event stream has ended.
    await in_browser(page.wait_for_text, "#run-status", "INTERRUPTED")
    await in_browser(page.wait_for, f"article[data-run='{run.id}']")

    await in_browser(
        page.wait_for_text, "li[data-kind=interruptionExpired]", "send_email: nobody decided in time"
    )
    await in_browser(page.wait_for_text, "#run-status", "COMPLETED")
    await in_browser(page.wait_for_text, "#final-output", REPLY)

    assert await in_browser(page.count, "article.interruption") == 0
    assert await in_browser(page.count, "li[data-kind=interruptionExpired]") == 1, "each event once"
    assert not await in_browser(page.visible, "#notice"), "ending the feed's subscription is no error"
    statuses = await in_browser(page.texts, "li[data-kind=statusChanged]")
    assert sum("COMPLETED" in status for status in statuses) == 1, statuses
