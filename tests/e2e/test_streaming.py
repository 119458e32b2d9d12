"""StreamRunEvents: live token deltas while the model speaks, stored events exactly once and in
order, and reconnecting from a cursor without gaps or duplicates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace

from timestep.app import ServiceConfig, TimestepService
from timestep.runtime.providers import ModelConfig
from timestep_client import RunEvent, RunStatus, TimestepClient

from timestep_testing.fakes.openai_responses import FakeOpenAI, gate, text, tool_call
from timestep_testing.helpers import (
    EMAIL_ARGS,
    WAIT,
    EventStream,
    collect_events,
    is_kind,
    is_stop_status,
    kinds,
    of_kind,
    pending,
    sequences,
    statuses,
    unique,
    wait_until,
)

is_text_delta = is_kind("text_delta")


async def collect(events: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [event async for event in events]


async def test_text_deltas_arrive_live_while_the_model_is_still_streaming(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    model_called = asyncio.Event()
    rest_of_answer = asyncio.Event()
    fake_openai.script(
        gate(text("The weather is lovely today.", pause_after_first_delta=rest_of_answer), model_called)
    )
    run = await client.create_run("assistant", "Say something nice")

    async with EventStream(client, run.id) as stream:
        await stream.next()  # the first event proves the subscription is live
        await fake_openai.wait_for_requests(1)
        model_called.set()

        first_delta = await stream.wait_for(is_text_delta)

        assert first_delta.sequence == 0, "token deltas are live-only, not stored"
        assert first_delta.text_delta.agent == "assistant"
        assert first_delta.text_delta.delta == "The"
        assert not any(is_stop_status(e) for e in stream.received)
        assert (await client.get_run(run.id)).status == RunStatus.RUN_STATUS_RUNNING

        rest_of_answer.set()
        rest = await stream.rest()

    events = stream.received
    deltas = [e.text_delta.delta for e in events if is_text_delta(e)]
    assert "".join(deltas) == "The weather is lovely today."
    # The first delta came alone; a reader slower than the model may get the rest merged.
    assert 2 <= len(deltas) <= 5
    assert is_stop_status(events[-1]), "the stream ends right after the stop status"
    assert statuses(rest)[-1] == RunStatus.RUN_STATUS_COMPLETED
    final = await client.get_run(run.id)
    assert sequences(events) == list(range(1, final.last_sequence + 1))
    [message] = of_kind(events, "message_output")
    assert message.text == "The weather is lovely today."


async def test_after_a_handoff_text_deltas_are_attributed_to_the_agent_now_speaking_also_after_resume(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    first_call = asyncio.Event()
    fake_openai.script(
        gate(tool_call("transfer_to_billing", {}), first_call),
        tool_call("issue_refund", {"order_id": "A-7", "amount": 5}),
    )
    run = await client.create_run("assistant", "Refund order A-7")
    async with EventStream(client, run.id) as stream:
        await stream.next()
        first_call.set()
        await stream.rest()
    run = await client.get_run(run.id)
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    await client.approve(run.id, pending(run)[0].id)

    answer = asyncio.Event()
    fake_openai.script(gate(text("Refunded 5.00 for order A-7."), answer))
    await client.resume(run.id)
    async with EventStream(client, run.id, after_sequence=run.last_sequence) as resumed:
        await resumed.next()
        answer.set()
        await resumed.rest()

    deltas = [e.text_delta for e in resumed.received if is_text_delta(e)]
    assert "".join(d.delta for d in deltas) == "Refunded 5.00 for order A-7."
    assert {d.agent for d in deltas} == {"billing"}
    assert [m.agent for m in of_kind(resumed.received, "message_output")] == ["billing"]
    handoffs = of_kind(stream.received, "handoff")
    assert [(h.from_agent, h.to_agent) for h in handoffs] == [("assistant", "billing")]


async def test_stored_events_have_strictly_increasing_sequences_without_gaps_and_deltas_are_not_replayed(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("get_weather", {"city": "Oslo"}), text("Cold and clear in Oslo."))
    run = await client.create_run("assistant", "Weather in Oslo?", wait=True)

    history = await collect_events(client, run.id)

    assert [e.sequence for e in history] == list(range(1, run.last_sequence + 1))
    assert "text_delta" not in kinds(history)
    assert is_stop_status(history[-1])
    assert all(e.run_id == run.id for e in history)
    times = [e.time.ToDatetime() for e in history]
    assert times == sorted(times)


async def test_the_stream_of_a_paused_run_ends_at_interrupted_and_a_new_subscription_follows_the_resume(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS))
    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True)

    first = await collect_events(client, run.id)
    assert statuses(first)[-1] == RunStatus.RUN_STATUS_INTERRUPTED
    assert first[-1].sequence == run.last_sequence

    await client.approve(run.id, pending(run)[0].id)
    model_called = asyncio.Event()
    fake_openai.script(gate(text("Sent."), model_called))
    resumed = await client.resume(run.id)
    async with EventStream(client, run.id, after_sequence=run.last_sequence) as stream:
        await fake_openai.wait_for_requests(2)
        model_called.set()
        second = await stream.rest()

    assert sequences(second) == list(
        range(run.last_sequence + 1, (await client.get_run(run.id)).last_sequence + 1)
    )
    assert second[0].WhichOneof("kind") == "interruption_decided"
    assert statuses(second) == [
        RunStatus.RUN_STATUS_QUEUED,
        RunStatus.RUN_STATUS_RUNNING,
        RunStatus.RUN_STATUS_COMPLETED,
    ]
    assert resumed.segment_count == 2


async def test_every_subscriber_that_joins_while_the_run_stops_receives_the_whole_history_and_is_ended(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    # Subscribers racing the stop status (read the run as RUNNING, then find the stop status
    # already stored) must still have their stream ended; several rounds make the race likely.
    for round_ in range(5):
        release = asyncio.Event()
        fake_openai.script(gate(text(f"Answer {round_}."), release))
        run = await client.create_run("assistant", f"Question {round_}")
        await fake_openai.wait_for_requests(round_ + 1)
        async with AsyncExitStack() as streams:
            subscribers = []
            for n in range(40):
                subscribers.append(await streams.enter_async_context(EventStream(client, run.id)))
                if n == 20:
                    release.set()
            histories = await asyncio.wait_for(asyncio.gather(*(s.rest() for s in subscribers)), WAIT)

        final = await client.get_run(run.id)
        assert final.status == RunStatus.RUN_STATUS_COMPLETED
        for history in histories:
            assert sequences(history) == list(range(1, final.last_sequence + 1))
            assert is_stop_status(history[-1])


async def test_resubscribing_after_any_cursor_returns_exactly_the_events_after_it(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("get_weather", {"city": "Rome"}), text("Warm in Rome."))
    run = await client.create_run("assistant", "Weather in Rome?", wait=True)
    history = await collect_events(client, run.id)
    last = run.last_sequence
    assert len(history) == last >= 8

    for cursor in (1, 2, last // 2, last - 1, last):
        tail = await collect_events(client, run.id, after_sequence=cursor)
        assert [e.sequence for e in tail] == list(range(cursor + 1, last + 1)), f"after_sequence={cursor}"
        assert tail == history[cursor:]


async def test_a_subscriber_joining_mid_run_gets_the_rest_of_the_events_live_exactly_once(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    second_call = asyncio.Event()
    fake_openai.script(
        tool_call("get_weather", {"city": "Paris"}), gate(text("Sunny in Paris."), second_call)
    )
    run = await client.create_run("assistant", "Weather in Paris?")
    await fake_openai.wait_for_requests(2)  # the second model call is held in flight

    so_far = await client.get_run(run.id)
    assert so_far.status == RunStatus.RUN_STATUS_RUNNING
    cursor = so_far.last_sequence - 1
    async with EventStream(client, run.id, after_sequence=cursor) as stream:
        replayed = await stream.next()  # one stored event is behind the cursor: the subscription is live
        assert replayed is not None
        assert replayed.sequence == cursor + 1
        before_release = len(stream.received)
        second_call.set()
        await stream.rest()

    final = await client.get_run(run.id)
    assert final.status == RunStatus.RUN_STATUS_COMPLETED
    received = stream.received
    assert sequences(received) == list(range(cursor + 1, final.last_sequence + 1))
    live = received[before_release:]
    assert "final_output" in kinds(live)
    assert "text_delta" in kinds(live), "token deltas after joining are delivered live"
    assert is_stop_status(received[-1])


async def test_the_client_stream_yields_each_stored_event_once_even_when_joining_mid_run(
    client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    answer_released = asyncio.Event()
    fake_openai.script(gate(text("Hello there."), answer_released))
    run = await client.create_run("assistant", "Say hello")
    await fake_openai.wait_for_requests(1)

    from_start = client.stream_events(run.id)
    from_one = client.stream_events(run.id, after_sequence=1)
    # Both followers hold a live subscription once they have received their first event.
    first_from_start = await asyncio.wait_for(anext(from_start), WAIT)
    first_from_one = await asyncio.wait_for(anext(from_one), WAIT)
    answer_released.set()

    rest_from_start, rest_from_one = await asyncio.wait_for(
        asyncio.gather(collect(from_start), collect(from_one)), WAIT
    )

    final = await client.get_run(run.id)
    assert final.status == RunStatus.RUN_STATUS_COMPLETED
    assert sequences([first_from_start, *rest_from_start]) == list(range(1, final.last_sequence + 1))
    assert sequences([first_from_one, *rest_from_one]) == list(range(2, final.last_sequence + 1))
    assert "text_delta" in kinds(rest_from_start)
    after_the_fact = [event async for event in client.stream_events(run.id)]
    assert after_the_fact == [first_from_start, *(e for e in rest_from_start if e.sequence)]


async def test_the_client_stream_reconnects_across_a_service_restart_and_sees_the_recovered_run_finish(
    durable_database: str, fake_openai: FakeOpenAI, model_config: ModelConfig
) -> None:
    never = asyncio.Event()
    fake_openai.script(gate(text("This answer never comes."), never), text("Hello after the restart."))
    # A database of its own: the restarted service must recover this test's segment and no other's.
    config = ServiceConfig(port=0, database_url=durable_database, executor_id=unique("replica"))
    first = await TimestepService.start(config, model_config=model_config)
    port = first.port
    second: TimestepService | None = None
    try:
        async with TimestepClient(f"127.0.0.1:{port}") as client:
            run = await client.create_run("assistant", "Say hello")
            await fake_openai.wait_for_requests(1)
            events = client.stream_events(run.id, backoff=0.05)
            received = [await asyncio.wait_for(anext(events), WAIT) for _ in range(run.last_sequence)]

            await first.stop(grace=0)  # the segment is left in flight, its workflow pending
            # The same replica coming back recovers its pending segment and calls the model again.
            second = await TimestepService.start(replace(config, port=port), model_config=model_config)
            received += await asyncio.wait_for(collect(events), WAIT)

            final = await client.get_run(run.id)
    finally:
        if second is not None:
            await second.stop(grace=0)

    assert final.status == RunStatus.RUN_STATUS_COMPLETED
    assert final.final_output == "Hello after the restart."
    assert len(fake_openai.requests) == 2
    assert sequences(received) == list(range(1, final.last_sequence + 1))
    assert statuses(received) == [
        RunStatus.RUN_STATUS_QUEUED,
        RunStatus.RUN_STATUS_RUNNING,
        RunStatus.RUN_STATUS_COMPLETED,
    ]


async def test_a_cancelled_stream_frees_its_subscription_while_the_run_goes_on(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    released = asyncio.Event()
    fake_openai.script(gate(text("Still here."), released))
    run = await client.create_run("assistant", "Take your time.")
    streams = [EventStream(client, run.id) for _ in range(5)]
    for stream in streams:
        await stream.wait_for(is_kind("status_changed"))
    assert service.bus is not None
    assert service.bus.subscriber_count(run.id) == 5

    for stream in streams:
        await stream.__aexit__(None, None, None)  # the client cancels the call
    await wait_until(lambda: service.bus is not None and service.bus.subscriber_count(run.id) == 0)
    assert service.metrics is not None
    active = service.metrics.registry.get_sample_value(
        "timestep_rpc_active_streams", {"method": "timestep.v1.RunService/StreamRunEvents"}
    )
    assert active == 0

    released.set()
    events = await collect_events(client, run.id)
    assert events[-1].status_changed.status == RunStatus.RUN_STATUS_COMPLETED
