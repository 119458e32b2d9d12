"""Approvals that fit real decisions: an approver edits a tool call's arguments (checked against
the tool's schema; the tool runs with them and the model sees the call as it ran), decides and
resumes in one call (idempotently), and approvals that nobody decides in time expire, with a
message the model sees, an event, a webhook, and a resume if the run asked for one; how long
they may wait comes from the run, else its agent, else the service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import grpc
import pytest
from timestep.examples.agents import example_agents
from timestep.runtime.providers import ModelConfig
from timestep.runtime.registry import AgentRegistry, RegisteredAgent
from timestep.settings import DEFAULT_EXPIRY_MESSAGE, ApprovalSettings, WebhookSettings
from timestep_client import InterruptionStatus, Run, RunStatus, TimestepClient
from timestep_client.v1 import runs_pb2

from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, function_call, text, tool_call, tool_calls
from timestep_testing.fakes.webhook_receiver import WebhookReceiver, verified
from timestep_testing.helpers import (
    EMAIL_ARGS,
    collect_events,
    error_reason,
    expect_rpc_error,
    function_call_outputs,
    of_kind,
    pending,
    unique,
    violated_fields,
)

EDITED = {"to": "carol@example.com", "subject": "Running late", "body": "See you at 10:30."}
EDITED_SENT = "Email to carol@example.com with subject 'Running late' sent."


def function_calls(request: dict[str, Any]) -> dict[str, str]:
    """The arguments of each function call a model request carries, by call id."""
    return {
        item["call_id"]: item["arguments"]
        for item in request["input"]
        if isinstance(item, dict) and item.get("type") == "function_call"
    }


async def test_an_edited_call_runs_with_the_edited_arguments_and_the_model_sees_it_as_it_ran(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_edit"), text("Sent to Carol."))
    run = await client.create_run("assistant", "Email Bob I'm late", wait=True)
    [waiting] = pending(run)

    response = await client.approve_and_resume(
        run.id, waiting.id, arguments=EDITED, decided_by="alice@example.com", wait=True
    )
    events = await collect_events(client, run.id)

    assert response.run.status == RunStatus.RUN_STATUS_COMPLETED
    assert response.run.final_output == "Sent to Carol."
    decided = response.interruption
    assert json.loads(decided.arguments_json) == EMAIL_ARGS  # what the model proposed
    assert json.loads(decided.approved_arguments_json) == EDITED  # what ran
    assert decided.decided_by == "alice@example.com"
    assert decided.status == InterruptionStatus.INTERRUPTION_STATUS_APPROVED
    resumed = fake_openai.requests[1]
    assert function_call_outputs(resumed) == {"call_edit": EDITED_SENT}
    assert json.loads(function_calls(resumed)["call_edit"]) == EDITED
    [announced] = of_kind(events, "interruption_decided")
    assert json.loads(announced.approved_arguments_json) == EDITED
    assert announced.decided_by == "alice@example.com"


async def test_the_conversation_remembers_an_edited_call_as_it_ran(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(
        tool_call("send_email", EMAIL_ARGS, call_id="call_session"), text("Sent to Carol."), text("Carol.")
    )
    run = await client.create_run("assistant", "Email Bob I'm late", session_id=unique("edits"), wait=True)
    await client.approve_and_resume(run.id, pending(run)[0].id, arguments=EDITED, wait=True)

    await client.create_run("assistant", "Whom did you email?", session_id=run.session_id, wait=True)

    later = fake_openai.requests[2]
    assert function_calls(later) == {"call_session": json.dumps(EDITED)}
    assert function_call_outputs(later) == {"call_session": EDITED_SENT}


@pytest.mark.parametrize(
    ("arguments_json", "fields"),
    [
        ('{"to": "carol@example.com", "body": "hi"}', ["arguments_json"]),
        ('{"to": 7, "subject": "s", "body": "b"}', ["arguments_json.to"]),
        ('{"to": 7, "subject": ["s"], "body": "b"}', ["arguments_json.subject", "arguments_json.to"]),
        ('{"to": "a@b.c", "subject": "s", "body": "b", "bcc": "eve@example.com"}', ["arguments_json"]),
        ('["carol@example.com"]', ["arguments_json"]),
        ("{not json", ["arguments_json"]),
    ],
)
async def test_an_edit_that_does_not_fit_the_tools_parameters_is_refused_and_nothing_is_decided(
    client: TimestepClient, fake_openai: FakeOpenAI, arguments_json: str, fields: list[str]
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run("assistant", "Email Bob", wait=True)
    [waiting] = pending(run)

    error = await expect_rpc_error(
        client.runs.ApproveInterruption(
            runs_pb2.ApproveInterruptionRequest(
                run_id=run.id, interruption_id=waiting.id, arguments_json=arguments_json
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )

    assert sorted(violated_fields(error)) == fields
    assert pending(await client.get_run(run.id)) == [waiting]


async def test_an_edit_with_always_is_refused(client: TimestepClient, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run("assistant", "Email Bob", wait=True)
    [waiting] = pending(run)

    error = await expect_rpc_error(
        client.approve(run.id, waiting.id, always=True, arguments=EDITED), grpc.StatusCode.INVALID_ARGUMENT
    )

    assert violated_fields(error) == ["arguments_json"]


async def test_a_different_edit_of_a_decided_call_is_refused_and_the_same_one_is_harmless(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run("assistant", "Email Bob", wait=True)
    [waiting] = pending(run)
    first = await client.approve(run.id, waiting.id, arguments=EDITED)

    again = await client.approve(run.id, waiting.id, arguments=EDITED)
    other = await expect_rpc_error(
        client.approve(run.id, waiting.id, arguments={**EDITED, "to": "dan@example.com"}),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    unedited = await expect_rpc_error(client.approve(run.id, waiting.id), grpc.StatusCode.FAILED_PRECONDITION)

    assert again == first
    assert error_reason(other) == "INTERRUPTION_ALREADY_DECIDED"
    assert "edited arguments" in (other.details() or "")
    assert error_reason(unedited) == "INTERRUPTION_ALREADY_DECIDED"


async def test_deciding_the_last_interruption_with_resume_resumes_the_run_in_the_same_call_once(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(
        tool_calls(
            function_call("send_email", EMAIL_ARGS, "call_a"),
            function_call("send_email", EDITED, "call_b"),
        ),
        text("One sent, one not."),
    )
    run = await client.create_run("assistant", "Email Bob and Carol", wait=True)
    first, second = pending(run)

    after_first = await client.approve_and_resume(run.id, first.id, wait=True)
    after_second = await client.reject_and_resume(run.id, second.id, "Not Carol.", wait=True)
    repeated = await client.reject_and_resume(run.id, second.id, "Not Carol.", wait=True)
    resumed_again = await expect_rpc_error(client.resume(run.id), grpc.StatusCode.FAILED_PRECONDITION)

    # One pending left: deciding the first only decides.
    assert after_first.run.status == RunStatus.RUN_STATUS_INTERRUPTED
    assert after_first.run.segment_count == 1
    assert after_second.run.status == RunStatus.RUN_STATUS_COMPLETED
    assert after_second.run.segment_count == 2
    assert after_second.run.final_output == "One sent, one not."
    # Repeating the call is harmless: the same decision, the run as it is, no third segment.
    assert repeated.run.status == RunStatus.RUN_STATUS_COMPLETED
    assert repeated.run.segment_count == 2
    assert repeated.interruption == after_second.interruption
    assert len(fake_openai.requests) == 2
    assert error_reason(resumed_again) == "RUN_NOT_RESUMABLE"
    assert function_call_outputs(fake_openai.requests[1])["call_b"] == "Not Carol."


# ----- expiry --------------------------------------------------------------------------------

FAST_EXPIRY = ApprovalSettings(check_interval_s=0.05)
HOOKS = WebhookSettings(allow_private=True, retry_initial_s=0.1, retry_max_s=0.3, dispatch_interval_s=0.05)


@asynccontextmanager
async def expiring_service(
    start_service: StartService, model_config: ModelConfig, database: str, **config: Any
) -> AsyncIterator[TimestepClient]:
    async with (
        start_service(
            model_config, database_url=database, approvals=FAST_EXPIRY, webhooks=HOOKS, **config
        ) as s,
        TimestepClient(f"127.0.0.1:{s.port}") as client,
    ):
        yield client


async def test_an_approval_nobody_decides_in_time_expires_the_model_is_told_and_the_run_resumes(
    start_service: StartService, model_config: ModelConfig, durable_database: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_late"), text("I did not send it."))
    async with (
        WebhookReceiver() as receiver,
        expiring_service(start_service, model_config, durable_database) as client,
    ):
        request = runs_pb2.CreateRunRequest(
            agent="assistant",
            input="Email Bob",
            auto_resume_on_expiry=True,
            webhook_url=receiver.url,
            wait=True,
        )
        request.approval_timeout.FromTimedelta(timedelta(seconds=1))
        created = await client.runs.CreateRun(request)
        [expired_hook] = await receiver.wait_for("interruption.expired")
        await receiver.wait_for("run.completed")
        run = await client.get_run(created.run.id)
        events = await collect_events(client, run.id)

    assert created.run.status == RunStatus.RUN_STATUS_INTERRUPTED
    [asked] = created.run.interruptions
    assert asked.HasField("expire_time")
    assert 0.9 <= (asked.expire_time.ToDatetime() - asked.create_time.ToDatetime()).total_seconds() <= 1.1
    assert created.run.approval_timeout.ToTimedelta() == timedelta(seconds=1)
    assert created.run.auto_resume_on_expiry
    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    [decided] = run.interruptions
    assert decided.status == InterruptionStatus.INTERRUPTION_STATUS_REJECTED
    assert decided.expired
    assert decided.decided_by == "timestep:expiry"
    assert decided.message == DEFAULT_EXPIRY_MESSAGE
    assert function_call_outputs(fake_openai.requests[1]) == {"call_late": DEFAULT_EXPIRY_MESSAGE}
    [expired_event] = of_kind(events, "interruption_expired")
    assert expired_event.id == asked.id
    # The run's own webhook, signed with the secret its CreateRun returned.
    assert created.webhook_secret.startswith("whsec_")
    assert run.webhook_id
    hook = verified(expired_hook, created.webhook_secret)
    assert hook["data"]["interruption"]["id"] == asked.id
    assert hook["data"]["interruption"]["expired"] is True
    assert {r.type for r in receiver.received} == {"run.interrupted", "interruption.expired", "run.completed"}


async def test_without_auto_resume_an_expired_run_waits_decided_and_tells_the_model_the_runs_message(
    start_service: StartService, model_config: ModelConfig, durable_database: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_late"), text("Understood."))
    async with (
        WebhookReceiver() as receiver,
        expiring_service(start_service, model_config, durable_database) as client,
    ):
        run = await client.create_run(
            "assistant",
            "Email Bob",
            wait=True,
            approval_timeout=timedelta(seconds=1),
            approval_expiry_message="The manager was away; do not send it.",
            webhook_url=receiver.url,
        )
        await receiver.wait_for("interruption.expired")
        expired = await client.get_run(run.id)
        late = await expect_rpc_error(
            client.approve(run.id, run.interruptions[0].id), grpc.StatusCode.FAILED_PRECONDITION
        )
        resumed = await client.resume(run.id, wait=True)

    assert expired.status == RunStatus.RUN_STATUS_INTERRUPTED
    [decided] = expired.interruptions
    assert (decided.status, decided.expired) == (InterruptionStatus.INTERRUPTION_STATUS_REJECTED, True)
    assert error_reason(late) == "INTERRUPTION_ALREADY_DECIDED"
    assert "its approval expired" in (late.details() or "")
    assert resumed.status == RunStatus.RUN_STATUS_COMPLETED
    assert function_call_outputs(fake_openai.requests[1]) == {
        "call_late": "The manager was away; do not send it."
    }


async def test_an_approval_timeout_out_of_range_is_refused_before_anything_is_written(
    client: TimestepClient,
) -> None:
    before = len((await client.list_runs(page_size=500)).runs)
    request = runs_pb2.CreateRunRequest(agent="assistant", input="hi")
    request.approval_timeout.FromTimedelta(timedelta(milliseconds=500))

    error = await expect_rpc_error(client.runs.CreateRun(request), grpc.StatusCode.INVALID_ARGUMENT)

    assert violated_fields(error) == ["approval_timeout"]
    assert len((await client.list_runs(page_size=500)).runs) == before


async def test_a_runs_approval_timeout_wins_over_its_agents_default_which_wins_over_the_services(
    start_service: StartService, model_config: ModelConfig, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(
        tool_call("send_email", EMAIL_ARGS),
        tool_call("send_email", EMAIL_ARGS),
        tool_call("issue_refund", {"order_id": "42", "amount": 10.0}),
    )
    assistant, billing = example_agents("gpt-4.1")
    registry = AgentRegistry([RegisteredAgent(assistant, approval_timeout=timedelta(minutes=10)), billing])
    service_default = ApprovalSettings(timeout=timedelta(hours=1))
    async with (
        start_service(model_config, registry=registry, approvals=service_default) as s,
        TimestepClient(f"127.0.0.1:{s.port}") as client,
    ):
        described = {agent.name: agent for agent in await client.list_agents()}
        agents_default = await client.create_run("assistant", "Email Bob", wait=True)
        own = await client.create_run(
            "assistant", "Email Bob", approval_timeout=timedelta(seconds=90), wait=True
        )
        services_default = await client.create_run("billing", "Refund order 42", wait=True)
        await cancel_all(client, [agents_default.id, own.id, services_default.id])

    assert described["assistant"].approval_timeout.ToTimedelta() == timedelta(minutes=10)
    assert not described["billing"].HasField("approval_timeout")
    assert_approval_timeouts(
        [
            (own, timedelta(seconds=90)),
            (agents_default, timedelta(minutes=10)),
            (services_default, timedelta(hours=1)),
        ]
    )


async def paused_state(client: TimestepClient, agent: str, text_input: str) -> str:
    """The RunState JSON of a run of `agent` paused on its first tool call (the run cancelled)."""
    run = await client.create_run(agent, text_input, wait=True)
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    state_json = (await client.get_state(run.id)).state_json
    await cancel_all(client, [run.id])
    return state_json


async def cancel_all(client: TimestepClient, run_ids: list[str]) -> None:
    """Cancel runs paused with approval timeouts, so that none expires (and resumes) while later
    tests check the shared database."""
    for run_id in run_ids:
        await client.cancel(run_id, "the test is over")


async def test_an_imported_runs_approval_timeout_wins_over_its_agents_default_which_wins_over_the_services(
    start_service: StartService, model_config: ModelConfig, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(
        tool_call("send_email", EMAIL_ARGS), tool_call("issue_refund", {"order_id": "42", "amount": 10.0})
    )
    assistant, billing = example_agents("gpt-4.1")
    registry = AgentRegistry([RegisteredAgent(assistant, approval_timeout=timedelta(minutes=10)), billing])
    async with (
        start_service(
            model_config, registry=registry, approvals=ApprovalSettings(timeout=timedelta(hours=1))
        ) as s,
        TimestepClient(f"127.0.0.1:{s.port}") as client,
    ):
        emailing = await paused_state(client, "assistant", "Email Bob")
        refunding = await paused_state(client, "billing", "Refund order 42")
        own = await client.import_state(
            "assistant",
            emailing,
            approval_timeout=timedelta(seconds=90),
            auto_resume_on_expiry=True,
        )
        agents_default = await client.import_state("assistant", emailing)
        services_default = await client.import_state("billing", refunding)
        await cancel_all(client, [own.id, agents_default.id, services_default.id])

    assert own.auto_resume_on_expiry
    assert not agents_default.auto_resume_on_expiry
    assert_approval_timeouts(
        [
            (own, timedelta(seconds=90)),
            (agents_default, timedelta(minutes=10)),
            (services_default, timedelta(hours=1)),
        ]
    )


async def test_an_imported_run_whose_approval_nobody_decides_in_time_expires_and_resumes(
    start_service: StartService, model_config: ModelConfig, durable_database: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_imported"), text("Not sent."))
    async with expiring_service(start_service, model_config, durable_database) as client:
        state_json = await paused_state(client, "assistant", "Email Bob")
        changes = client.watch_runs()
        bookmark = await anext(changes)
        assert not bookmark.run_id
        run = await client.import_state(
            "assistant",
            state_json,
            approval_timeout=timedelta(seconds=1),
            auto_resume_on_expiry=True,
            approval_expiry_message="Nobody answered; do not send it.",
        )
        async with asyncio.timeout(30):
            async for change in changes:
                if (
                    change.run_id == run.id
                    and change.event.status_changed.status == RunStatus.RUN_STATUS_COMPLETED
                ):
                    break
        finished = await client.get_run(run.id)

    [decided] = finished.interruptions
    assert (decided.status, decided.expired) == (InterruptionStatus.INTERRUPTION_STATUS_REJECTED, True)
    assert finished.final_output == "Not sent."
    assert function_call_outputs(fake_openai.requests[-1]) == {
        "call_imported": "Nobody answered; do not send it."
    }


async def test_an_imports_approval_timeout_out_of_range_is_refused_before_anything_is_written(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    state_json = await paused_state(client, "assistant", "Email Bob")
    before = len((await client.list_runs(page_size=500)).runs)
    request = runs_pb2.ImportRunStateRequest(agent="assistant", state_json=state_json)
    request.approval_timeout.FromTimedelta(timedelta(days=366))

    error = await expect_rpc_error(client.runs.ImportRunState(request), grpc.StatusCode.INVALID_ARGUMENT)

    assert violated_fields(error) == ["approval_timeout"]
    assert "365 days" in (error.details() or "")
    assert len((await client.list_runs(page_size=500)).runs) == before


def assert_approval_timeouts(expected: list[tuple[Run, timedelta]]) -> None:
    """Each run has this approval timeout, and its pending interruption expires that long after it
    was asked."""
    for run, timeout in expected:
        assert run.approval_timeout.ToTimedelta() == timeout
        [asked] = run.interruptions
        waits = asked.expire_time.ToDatetime() - asked.create_time.ToDatetime()
        assert abs(waits - timeout) < timedelta(seconds=1)
