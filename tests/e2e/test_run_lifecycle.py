"""Run lifecycle: idempotent creation, cancellation, and how model failures end a run."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
from timestep.runtime.providers import ModelConfig
from timestep_client import InterruptionStatus, RunStatus, TimestepClient

from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, error, gate, text, tool_call
from timestep_testing.helpers import (
    EMAIL_ARGS,
    WAIT,
    EventStream,
    collect_events,
    conversation,
    expect_rpc_error,
    is_stop_status,
    of_kind,
    pending,
    statuses,
    unique,
)

# ----- creating runs -------------------------------------------------------------------------


async def test_create_run_takes_responses_api_input_items_and_a_model_override_for_every_agent(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("transfer_to_billing", {}), text("Billing here."))
    items = [
        {"role": "user", "content": "I was charged twice."},
        {"role": "assistant", "content": "Let me get billing."},
        {"role": "user", "content": "Thanks."},
    ]

    run = await client.create_run(
        "assistant", input_items=items, model="gpt-fake-mini", metadata={"ticket": "T-9"}, wait=True
    )

    assert run.status == RunStatus.RUN_STATUS_COMPLETED
    assert (run.model, dict(run.metadata)) == ("gpt-fake-mini", {"ticket": "T-9"})
    assert [r["model"] for r in fake_openai.requests] == ["gpt-fake-mini", "gpt-fake-mini"]
    assert conversation(fake_openai.requests[0]) == [
        ("user", "I was charged twice."),
        ("assistant", "Let me get billing."),
        ("user", "Thanks."),
    ]


async def test_without_a_model_override_each_agent_uses_its_own_model(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(text("Hi."))

    run = await client.create_run("assistant", "Say hi", wait=True)

    assert run.model == ""
    assert fake_openai.requests[0]["model"] == "gpt-4.1"


# ----- idempotency ---------------------------------------------------------------------------


async def test_repeating_create_run_with_the_same_request_id_returns_the_same_run_and_calls_the_model_once(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    request_id = unique("req")
    fake_openai.script(text("Hello once."))

    first = await client.create_run(
        "assistant", "Say hello", request_id=request_id, metadata={"ticket": "T-1"}, wait=True
    )
    again = await client.create_run(
        "assistant", "Say hello", request_id=request_id, metadata={"ticket": "T-1"}, wait=True
    )

    assert first.status == RunStatus.RUN_STATUS_COMPLETED
    assert again.id == first.id
    assert again.request_id == request_id
    assert again.final_output == "Hello once."
    assert len(fake_openai.requests) == 1
    assert again.segment_count == 1


async def test_concurrent_create_runs_with_one_request_id_start_a_single_run(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    request_id = unique("req")
    fake_openai.script(text("Hello once."))

    runs = await asyncio.wait_for(
        asyncio.gather(
            *(client.create_run("assistant", "Say hello", request_id=request_id, wait=True) for _ in range(4))
        ),
        WAIT,
    )

    assert {run.id for run in runs} == {runs[0].id}
    assert {run.status for run in runs} == {RunStatus.RUN_STATUS_COMPLETED}
    assert len(fake_openai.requests) == 1


async def test_reusing_a_request_id_with_different_arguments_is_already_exists(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    request_id = unique("req")
    fake_openai.script(text("Hello."))
    original = await client.create_run("assistant", "Say hello", request_id=request_id, wait=True)

    failure = await expect_rpc_error(
        client.create_run("assistant", "Say goodbye", request_id=request_id), grpc.StatusCode.ALREADY_EXISTS
    )
    assert original.id in (failure.details() or "")
    await expect_rpc_error(
        client.create_run("billing", "Say hello", request_id=request_id), grpc.StatusCode.ALREADY_EXISTS
    )
    await expect_rpc_error(
        client.create_run("assistant", "Say hello", request_id=request_id, metadata={"k": "v"}),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert len(fake_openai.requests) == 1


# ----- cancellation --------------------------------------------------------------------------


async def test_cancelling_a_running_run_stops_it_with_the_reason_while_the_model_call_is_in_flight(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    never = asyncio.Event()
    fake_openai.script(gate(text("This answer never comes."), never))
    run = await client.create_run("assistant", "Say hello")
    async with EventStream(client, run.id) as stream:
        await fake_openai.wait_for_requests(1)
        assert (await client.get_run(run.id)).status == RunStatus.RUN_STATUS_RUNNING

        cancelled = await client.cancel(run.id, "The user closed the chat.")

        assert cancelled.status == RunStatus.RUN_STATUS_CANCELLED
        assert (cancelled.error.code, cancelled.error.message) == ("cancelled", "The user closed the chat.")
        stop = await stream.wait_for(is_stop_status)
        assert stop.status_changed.status == RunStatus.RUN_STATUS_CANCELLED
        assert stop.status_changed.reason == "The user closed the chat."
        assert await stream.next() is None, "the stream ends after the stop status"

    stored = await client.get_run(run.id)
    assert stored.status == RunStatus.RUN_STATUS_CANCELLED
    assert stored.final_output == ""
    await expect_rpc_error(client.resume(run.id), grpc.StatusCode.FAILED_PRECONDITION)


async def test_cancelling_an_interrupted_run_withdraws_its_pending_approvals(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True)
    [interruption] = pending(run)

    cancelled = await client.cancel(run.id)

    assert cancelled.status == RunStatus.RUN_STATUS_CANCELLED
    assert cancelled.error.code == "cancelled"
    assert cancelled.error.message  # a default reason is recorded
    listed = await client.list_interruptions()
    assert interruption.id not in {i.id for i in listed.interruptions}
    await expect_rpc_error(client.approve(run.id, interruption.id), grpc.StatusCode.FAILED_PRECONDITION)
    await expect_rpc_error(client.resume(run.id), grpc.StatusCode.FAILED_PRECONDITION)
    events = await collect_events(client, run.id)
    assert statuses(events)[-1] == RunStatus.RUN_STATUS_CANCELLED
    assert len(fake_openai.requests) == 1


async def test_a_finished_run_cannot_be_cancelled(client: TimestepClient, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(text("Done."))
    run = await client.create_run("assistant", "Say done", wait=True)
    assert run.status == RunStatus.RUN_STATUS_COMPLETED

    await expect_rpc_error(client.cancel(run.id, "too late"), grpc.StatusCode.FAILED_PRECONDITION)

    after = await client.get_run(run.id)
    assert after.status == RunStatus.RUN_STATUS_COMPLETED
    assert after.final_output == "Done."
    assert not after.HasField("error")


# ----- failures ------------------------------------------------------------------------------


async def test_a_model_error_fails_the_run_with_model_error_and_an_error_event(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(error(400, "The prompt is too long for this model."))

    run = await client.create_run("assistant", "Say hello", wait=True)

    assert run.status == RunStatus.RUN_STATUS_FAILED
    assert run.error.code == "model_error"
    assert "400" in run.error.message
    assert "The prompt is too long for this model." in run.error.message
    assert len(fake_openai.requests) == 1
    events = await collect_events(client, run.id)
    [failure] = of_kind(events, "error")
    assert (failure.code, failure.message) == (run.error.code, run.error.message)
    assert statuses(events)[-1] == RunStatus.RUN_STATUS_FAILED


async def test_output_the_database_refuses_to_store_fails_the_run_instead_of_leaving_it_running(
    client: TimestepClient, fake_openai: FakeOpenAI, database_url: str
) -> None:
    # Any text is storable, so PostgreSQL is made to refuse this one message by a trigger.
    answer = unique("unstorable answer")
    trigger = unique("timestep_test_refuse").replace("-", "_")
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            f"""CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.kind = 'message_output' AND NEW.payload->>'text' = '{answer}' THEN
                        RAISE EXCEPTION 'test trigger refuses this output';
                    END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER {trigger} BEFORE INSERT ON run_events
                    FOR EACH ROW EXECUTE FUNCTION {trigger}()"""
        )
        fake_openai.script(text(answer))

        run = await client.create_run("assistant", "Say something odd", wait=True, timeout=30)
    finally:
        await connection.execute(
            f"DROP TRIGGER IF EXISTS {trigger} ON run_events; DROP FUNCTION IF EXISTS {trigger}()"
        )
        await connection.close()

    assert run.status == RunStatus.RUN_STATUS_FAILED
    assert run.error.code == "internal"
    assert "test trigger refuses this output" in run.error.message
    assert statuses(await collect_events(client, run.id))[-1] == RunStatus.RUN_STATUS_FAILED


async def test_a_service_without_an_api_key_fails_runs_with_model_not_configured_and_calls_no_model(
    start_service: StartService, fake_openai: FakeOpenAI
) -> None:
    unconfigured = ModelConfig(openai_api_key="", openai_base_url=fake_openai.base_url)
    async with start_service(unconfigured) as service, TimestepClient(f"127.0.0.1:{service.port}") as client:
        run = await client.create_run("assistant", "Say hello", wait=True)
        events = await collect_events(client, run.id)

    assert run.status == RunStatus.RUN_STATUS_FAILED
    assert run.error.code == "model_not_configured"
    assert "OPENAI_API_KEY" in run.error.message
    assert [e.code for e in of_kind(events, "error")] == ["model_not_configured"]
    assert fake_openai.requests == []


async def test_a_decided_interruption_keeps_its_decision_when_the_resumed_segment_fails(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True)
    await client.approve(run.id, pending(run)[0].id)
    fake_openai.script(error(500, "The model is overloaded.", headers={"x-should-retry": "false"}))

    run = await client.resume(run.id, wait=True)

    assert run.status == RunStatus.RUN_STATUS_FAILED
    assert run.error.code == "model_error"
    assert [i.status for i in run.interruptions] == [InterruptionStatus.INTERRUPTION_STATUS_APPROVED]
    assert run.usage.requests == 1, "the failed call reported no usage"
