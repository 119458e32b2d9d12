"""Sessions: runs that name the same session_id share one conversation history."""

from __future__ import annotations

from timestep_client import RunStatus, TimestepClient

from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.helpers import (
    EMAIL_ARGS,
    EMAIL_SENT,
    conversation,
    function_call_outputs,
    pending,
    unique,
)


async def test_a_second_run_in_the_same_session_sees_the_first_runs_conversation(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("session")
    fake_openai.script(text("Nice to meet you, Ada."), text("Your name is Ada."))

    first = await client.create_run("assistant", "My name is Ada.", session_id=session, wait=True)
    second = await client.create_run("assistant", "What is my name?", session_id=session, wait=True)

    assert (first.status, second.status) == (RunStatus.RUN_STATUS_COMPLETED, RunStatus.RUN_STATUS_COMPLETED)
    assert (first.session_id, second.session_id) == (session, session)
    assert conversation(fake_openai.requests[0]) == [("user", "My name is Ada.")]
    assert conversation(fake_openai.requests[1]) == [
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]


async def test_a_run_in_another_session_or_in_none_does_not_see_that_conversation(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("session")
    fake_openai.script(text("Nice to meet you, Ada."), text("I don't know."), text("I don't know either."))

    await client.create_run("assistant", "My name is Ada.", session_id=session, wait=True)
    other = await client.create_run("assistant", "What is my name?", session_id=unique("session"), wait=True)
    sessionless = await client.create_run("assistant", "What is my name?", wait=True)

    assert other.status == RunStatus.RUN_STATUS_COMPLETED
    assert sessionless.session_id == ""
    assert conversation(fake_openai.requests[1]) == [("user", "What is my name?")]
    assert conversation(fake_openai.requests[2]) == [("user", "What is my name?")]


async def test_a_session_remembers_an_approved_tool_call_once_after_the_run_resumes(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("session")
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_session_email"))
    run = await client.create_run("assistant", "Tell Bob I'm running late", session_id=session, wait=True)
    await client.approve(run.id, pending(run)[0].id)
    fake_openai.script(text("Bob has been told."))
    run = await client.resume(run.id, wait=True)
    assert run.status == RunStatus.RUN_STATUS_COMPLETED

    fake_openai.script(text("You asked me to email Bob."))
    await client.create_run("assistant", "What did I ask you?", session_id=session, wait=True)

    follow_up = fake_openai.requests[-1]
    assert conversation(follow_up) == [
        ("user", "Tell Bob I'm running late"),
        ("assistant", "Bob has been told."),
        ("user", "What did I ask you?"),
    ]
    calls = [i for i in follow_up["input"] if i.get("type") == "function_call"]
    assert [c["call_id"] for c in calls] == ["call_session_email"]
    assert function_call_outputs(follow_up) == {"call_session_email": EMAIL_SENT}
