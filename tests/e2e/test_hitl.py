"""Human in the loop: a run pauses on tool calls that need approval, a person decides each one
over gRPC, and the resumed run continues with the tool's output or the rejection message."""

from __future__ import annotations

import json

import grpc
from timestep_client import InterruptionStatus, RunStatus, TimestepClient

from timestep_testing.fakes.openai_responses import FakeOpenAI, function_call, text, tool_call, tool_calls
from timestep_testing.helpers import (
    EMAIL_ARGS,
    EMAIL_SENT,
    arguments,
    assert_usage,
    collect_events,
    expect_rpc_error,
    function_call_outputs,
    kinds,
    of_kind,
    pending,
    sequences,
)

REFUND_ARGS = {"order_id": "A-1001", "amount": 42.5}


async def test_a_tool_that_needs_approval_pauses_the_run_until_approved_then_its_output_reaches_the_model(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    ask = tool_call("send_email", EMAIL_ARGS, call_id="call_email_1")
    fake_openai.script(ask)

    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True)

    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    assert run.segment_count == 1
    [interruption] = run.interruptions
    assert interruption.status == InterruptionStatus.INTERRUPTION_STATUS_PENDING
    assert interruption.run_id == run.id
    assert interruption.agent == "assistant"
    assert interruption.tool_name == "send_email"
    assert interruption.call_id == "call_email_1"
    assert arguments(interruption) == EMAIL_ARGS
    assert interruption.segment == 1
    assert not interruption.HasField("decide_time")
    assert len(fake_openai.requests) == 1  # the tool did not run: no output went back to the model

    approved = await client.approve(run.id, interruption.id)
    assert approved.status == InterruptionStatus.INTERRUPTION_STATUS_APPROVED
    assert approved.HasField("decide_time")

    answer = text("Done: Bob knows you are running late.")
    fake_openai.script(answer)
    run = await client.resume(run.id, wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    assert run.final_output == "Done: Bob knows you are running late."
    assert run.segment_count == 2
    assert [i.status for i in run.interruptions] == [InterruptionStatus.INTERRUPTION_STATUS_APPROVED]
    assert len(fake_openai.requests) == 2
    assert function_call_outputs(fake_openai.requests[-1]) == {"call_email_1": EMAIL_SENT}
    assert_usage(run, ask, answer)
    assert not run.HasField("error")


async def test_the_event_history_of_an_approved_run_tells_the_whole_story_in_order(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_story"))
    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True)
    await client.approve(run.id, run.interruptions[0].id)
    fake_openai.script(text("Sent."))
    run = await client.resume(run.id, wait=True)

    events = await collect_events(client, run.id)

    assert kinds(events) == [
        "status_changed",  # QUEUED
        "status_changed",  # RUNNING
        "tool_called",
        "interruption",
        "usage",
        "status_changed",  # INTERRUPTED
        "interruption_decided",
        "status_changed",  # QUEUED (ResumeRun)
        "status_changed",  # RUNNING
        "tool_output",
        "message_output",
        "final_output",
        "usage",
        "status_changed",  # COMPLETED
    ]
    assert sequences(events) == list(range(1, run.last_sequence + 1))
    assert [e.segment for e in events[1:]] == [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]
    [raised] = of_kind(events, "interruption")
    assert (raised.id, raised.status) == (
        run.interruptions[0].id,
        InterruptionStatus.INTERRUPTION_STATUS_PENDING,
    )
    [called] = of_kind(events, "tool_called")
    assert (called.tool_name, called.call_id, json.loads(called.arguments_json)) == (
        "send_email",
        "call_story",
        EMAIL_ARGS,
    )
    [output] = of_kind(events, "tool_output")
    assert (output.call_id, output.output) == ("call_story", EMAIL_SENT)
    [decided] = of_kind(events, "interruption_decided")
    assert decided.status == InterruptionStatus.INTERRUPTION_STATUS_APPROVED
    [final] = of_kind(events, "final_output")
    assert (final.agent, final.output) == ("assistant", "Sent.")
    last_usage = of_kind(events, "usage")[-1]
    assert last_usage.total == run.usage


async def test_a_rejected_tool_call_does_not_run_and_the_model_is_told_the_rejection_message(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_rejected"))
    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True)
    [interruption] = pending(run)

    rejected = await client.reject(run.id, interruption.id, "Do not email Bob; I will call him.")
    assert rejected.status == InterruptionStatus.INTERRUPTION_STATUS_REJECTED
    assert rejected.message == "Do not email Bob; I will call him."

    fake_openai.script(text("Understood, I did not email Bob."))
    run = await client.resume(run.id, wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    assert run.final_output == "Understood, I did not email Bob."
    assert function_call_outputs(fake_openai.requests[-1]) == {
        "call_rejected": "Do not email Bob; I will call him."
    }
    [decided] = run.interruptions
    assert decided.status == InterruptionStatus.INTERRUPTION_STATUS_REJECTED
    assert decided.message == "Do not email Bob; I will call him."
    events = await collect_events(client, run.id)
    outputs = [(o.call_id, o.output) for o in of_kind(events, "tool_output")]
    assert outputs == [("call_rejected", "Do not email Bob; I will call him.")], "the tool must not run"


async def test_a_rejection_without_a_message_tells_the_model_the_sdks_default_rejection(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_plain_reject"))
    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True)
    rejected = await client.reject(run.id, pending(run)[0].id)
    assert rejected.message == ""

    fake_openai.script(text("I did not send it."))
    run = await client.resume(run.id, wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    told = function_call_outputs(fake_openai.requests[-1])["call_plain_reject"]
    assert told
    assert told != EMAIL_SENT


async def test_a_run_with_two_pending_calls_resumes_only_after_both_are_decided(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    to_bob = {**EMAIL_ARGS, "to": "bob@example.com"}
    to_eve = {**EMAIL_ARGS, "to": "eve@example.com"}
    fake_openai.script(
        tool_calls(
            function_call("send_email", to_bob, call_id="call_bob"),
            function_call("send_email", to_eve, call_id="call_eve"),
        )
    )
    run = await client.create_run("assistant", "Tell Bob and Eve I'm running late", wait=True)

    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    by_call = {i.call_id: i for i in pending(run)}
    assert sorted(by_call) == ["call_bob", "call_eve"]
    assert arguments(by_call["call_bob"]) == to_bob
    assert arguments(by_call["call_eve"]) == to_eve
    listed = await client.list_interruptions(run.id)
    assert {i.id for i in listed.interruptions} == {i.id for i in run.interruptions}

    error = await expect_rpc_error(client.resume(run.id), grpc.StatusCode.FAILED_PRECONDITION)
    assert by_call["call_bob"].id in (error.details() or "")
    assert by_call["call_eve"].id in (error.details() or "")

    await client.approve(run.id, by_call["call_bob"].id)
    error = await expect_rpc_error(client.resume(run.id), grpc.StatusCode.FAILED_PRECONDITION)
    assert by_call["call_eve"].id in (error.details() or "")
    assert by_call["call_bob"].id not in (error.details() or "")
    assert (await client.get_run(run.id)).status == RunStatus.RUN_STATUS_INTERRUPTED
    assert len(fake_openai.requests) == 1

    await client.reject(run.id, by_call["call_eve"].id, "Eve already knows.")
    fake_openai.script(text("Bob is told; Eve was not emailed."))
    run = await client.resume(run.id, wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    assert len(fake_openai.requests) == 2
    assert function_call_outputs(fake_openai.requests[-1]) == {
        "call_bob": EMAIL_SENT,
        "call_eve": "Eve already knows.",
    }
    decided = {i.call_id: i.status for i in run.interruptions}
    assert decided == {
        "call_bob": InterruptionStatus.INTERRUPTION_STATUS_APPROVED,
        "call_eve": InterruptionStatus.INTERRUPTION_STATUS_REJECTED,
    }


async def test_a_harmless_tool_runs_without_asking(client: TimestepClient, fake_openai: FakeOpenAI) -> None:
    weather = tool_call("get_weather", {"city": "Lisbon"}, call_id="call_weather")
    answer = text("It is sunny in Lisbon.")
    fake_openai.script(weather, answer)

    run = await client.create_run("assistant", "Weather in Lisbon?", wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    assert run.interruptions == []
    assert function_call_outputs(fake_openai.requests[-1]) == {
        "call_weather": "The weather in Lisbon is sunny, 21°C."
    }
    assert_usage(run, weather, answer)


async def test_after_a_handoff_the_billing_agent_asks_for_approval_and_finishes_the_run(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    handoff = tool_call("transfer_to_billing", {}, call_id="call_handoff")
    refund = tool_call("issue_refund", REFUND_ARGS, call_id="call_refund")
    fake_openai.script(handoff, refund)

    run = await client.create_run("assistant", "Refund order A-1001, 42.50 please", wait=True)

    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    assert run.agent == "assistant"
    assert run.current_agent == "billing"
    [interruption] = pending(run)
    assert (interruption.agent, interruption.tool_name, interruption.call_id) == (
        "billing",
        "issue_refund",
        "call_refund",
    )
    assert arguments(interruption) == REFUND_ARGS
    assert fake_openai.requests[1]["instructions"].startswith("You handle billing questions")

    await client.approve(run.id, interruption.id)
    answer = text("Refunded 42.50 for order A-1001.")
    fake_openai.script(answer)
    run = await client.resume(run.id, wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    assert run.current_agent == "billing"
    assert run.final_output == "Refunded 42.50 for order A-1001."
    assert fake_openai.requests[-1]["instructions"].startswith("You handle billing questions")
    assert (
        function_call_outputs(fake_openai.requests[-1])["call_refund"] == "Refunded 42.50 for order A-1001."
    )
    assert_usage(run, handoff, refund, answer)

    events = await collect_events(client, run.id)
    assert [(h.from_agent, h.to_agent) for h in of_kind(events, "handoff")] == [("assistant", "billing")]
    assert "transfer_to_billing" in [c.tool_name for c in of_kind(events, "tool_called")]
    [final] = of_kind(events, "final_output")
    assert final.agent == "billing"


async def test_deciding_the_same_way_twice_is_harmless_but_a_decision_cannot_be_changed(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True)
    [interruption] = pending(run)

    first = await client.approve(run.id, interruption.id)
    again = await client.approve(run.id, interruption.id)

    assert again == first
    await expect_rpc_error(client.reject(run.id, interruption.id, "no"), grpc.StatusCode.FAILED_PRECONDITION)
    events = await collect_events(client, run.id)
    assert len(of_kind(events, "interruption_decided")) == 1


async def test_approving_with_always_lets_later_calls_of_that_tool_run_without_asking(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_first"))
    run = await client.create_run("assistant", "Tell Bob I'm running late, twice", wait=True)
    approved = await client.approve(run.id, pending(run)[0].id, always=True)
    assert approved.always

    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_second"), text("Both sent."))
    run = await client.resume(run.id, wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    assert len(run.interruptions) == 1
    assert function_call_outputs(fake_openai.requests[-1]) == {
        "call_first": EMAIL_SENT,
        "call_second": EMAIL_SENT,
    }


async def test_a_resumed_run_can_pause_again_and_keeps_earlier_decisions_in_its_history(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_first"))
    run = await client.create_run("assistant", "Email Bob, then email Eve", wait=True)
    first = pending(run)[0]
    await client.approve(run.id, first.id)

    to_eve = {**EMAIL_ARGS, "to": "eve@example.com"}
    fake_openai.script(tool_call("send_email", to_eve, call_id="call_second"))
    run = await client.resume(run.id, wait=True)

    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    assert run.segment_count == 2
    [second] = pending(run)
    assert (second.call_id, second.segment) == ("call_second", 2)
    assert arguments(second) == to_eve
    assert [(i.call_id, i.status) for i in run.interruptions] == [
        ("call_first", InterruptionStatus.INTERRUPTION_STATUS_APPROVED),
        ("call_second", InterruptionStatus.INTERRUPTION_STATUS_PENDING),
    ]
    listed = await client.list_interruptions(run.id)
    assert [i.id for i in listed.interruptions] == [first.id, second.id]
    assert function_call_outputs(fake_openai.requests[-1]) == {"call_first": EMAIL_SENT}

    await client.approve(run.id, second.id)
    fake_openai.script(text("Both emailed."))
    run = await client.resume(run.id, wait=True)

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    assert run.segment_count == 3
    assert run.usage.requests == 3
