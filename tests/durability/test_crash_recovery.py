"""`kill -9` mid-run, restart with the same executor id, and the run completes: completed model
and tool calls are never repeated, the one in flight is (unless the tool must not be), a
subscriber that reconnects sees every stored event once, and a paused run survives."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
from timestep_client import RunStatus

from tests.durability.conftest import WAIT, LaunchReplica, RecordedSteps, ToolProbe, follow_to_stop
from timestep_testing.fakes.openai_responses import (
    FakeOpenAI,
    function_call,
    gate,
    text,
    tool_call,
    tool_calls,
)
from timestep_testing.helpers import (
    collect_events,
    conversation,
    function_call_outputs,
    kinds,
    pending,
    sequences,
)


async def test_kill_during_a_model_call_repeats_only_that_call(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    held = asyncio.Event()
    fake_openai.script(
        tool_call("get_weather", {"city": "Paris"}),
        gate(text("Never delivered."), held),
        text("Sunny in Paris."),
        text("Sunny tomorrow too."),
    )
    server = await launch("crash-model")
    async with server.client() as client:
        run = await client.create_run("assistant", "Weather in Paris?", session_id="trip")
        subscriber = asyncio.create_task(follow_to_stop(client, run.id))
        await fake_openai.wait_for_requests(2, WAIT)  # the second model call is in flight

        await server.restart()

        seen = await subscriber
        final = await client.get_run(run.id)
        stored = await collect_events(client, run.id, timeout=WAIT)
        # The next run of the conversation is sent the session's history: each item once.
        follow_up = await client.create_run("assistant", "And tomorrow?", session_id="trip", wait=True)

    assert final.status == RunStatus.RUN_STATUS_COMPLETED, final
    assert final.final_output == "Sunny in Paris."
    # The completed first call was replayed from its record; the one in flight (cut off by the
    # kill) was sent again, once, with the same input: the recorded tool output, and the
    # conversation as it was before the run.
    assert len(fake_openai.requests) == 4
    assert fake_openai.abandoned == [1]
    assert fake_openai.requests[2]["input"] == fake_openai.requests[1]["input"]
    assert conversation(fake_openai.requests[2]) == [("user", "Weather in Paris?")]
    assert list(function_call_outputs(fake_openai.requests[2]).values()) == [
        "The weather in Paris is sunny, 21°C."
    ]
    assert final.usage.requests == 2  # the lost call's response never arrived
    # The subscriber reconnected across the restart and saw each stored event once, in order.
    seen_sequences = sequences(seen)
    assert seen_sequences == list(range(1, len(seen_sequences) + 1))
    assert seen_sequences == sequences(stored)
    assert kinds(e for e in seen if e.sequence) == kinds(stored)
    assert kinds(stored).count("tool_called") == 1
    assert kinds(stored).count("message_output") == 1
    assert follow_up.final_output == "Sunny tomorrow too."
    history = fake_openai.requests[3]["input"]
    assert [item.get("type", "message") for item in history] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
        "message",
    ]
    assert conversation(fake_openai.requests[3]) == [
        ("user", "Weather in Paris?"),
        ("assistant", "Sunny in Paris."),
        ("user", "And tomorrow?"),
    ]


async def test_kill_during_parallel_tool_calls_reruns_only_the_unfinished_one(
    launch: LaunchReplica, fake_openai: FakeOpenAI, tools: ToolProbe, recorded_steps: RecordedSteps
) -> None:
    fake_openai.script(
        tool_call("slow_task", {"label": "first"}, "call_first"),
        tool_calls(
            function_call("slow_task", {"label": "quick"}, "call_quick"),
            function_call("slow_task", {"label": "slow"}, "call_slow"),
        ),
        text("All done."),
    )
    for label in ("first", "quick"):
        tools.open_gate(label)
    server = await launch("crash-tool")
    await recorded_steps.start()
    async with server.client() as client:
        run = await client.create_run("worker", "Do first, then quick and slow together.")
        subscriber = asyncio.create_task(follow_to_stop(client, run.id))
        await tools.wait_for("start slow_task slow")
        # "first" and "quick" are recorded; "slow" is still running.
        await recorded_steps.wait_for("tool:slow_task", times=2)

        await server.restart()

        await tools.wait_for("start slow_task slow", times=2)  # at least once: it runs again
        tools.open_gate("slow")
        seen = await subscriber
        final = await client.get_run(run.id)
        stored = await collect_events(client, run.id, timeout=WAIT)

    assert final.status == RunStatus.RUN_STATUS_COMPLETED, final
    assert final.final_output == "All done."
    # The completed calls ("first", and "quick" beside the one cut off) ran once; "slow" ran
    # again after the restart, to its end.
    assert Counter(tools.lines()) == {
        "start slow_task first": 1,
        "end slow_task first": 1,
        "start slow_task quick": 1,
        "end slow_task quick": 1,
        "start slow_task slow": 2,
        "end slow_task slow": 1,
    }
    # No model call was in flight at the kill: none was repeated; and each recorded tool
    # output went back to its own call when the parallel calls were replayed.
    assert len(fake_openai.requests) == 3
    assert function_call_outputs(fake_openai.requests[2]) == {
        "call_first": "slow_task first done",
        "call_quick": "slow_task quick done",
        "call_slow": "slow_task slow done",
    }
    seen_sequences = sequences(seen)
    assert seen_sequences == list(range(1, len(seen_sequences) + 1))
    assert seen_sequences == sequences(stored)
    assert kinds(stored).count("tool_called") == 3
    assert kinds(stored).count("tool_output") == 3


async def test_a_tool_reached_through_a_handoff_object_that_completed_before_a_kill_runs_once(
    launch: LaunchReplica, fake_openai: FakeOpenAI, tools: ToolProbe, recorded_steps: RecordedSteps
) -> None:
    held = asyncio.Event()
    fake_openai.script(
        tool_call("transfer_to_courier", {}),
        tool_call("pack_parcel", {"label": "parcel-1"}, "call_pack"),
        gate(text("Never delivered."), held),
        text("Parcel packed."),
    )
    tools.open_gate("parcel-1")
    server = await launch("crash-handoff")
    await recorded_steps.start()
    async with server.client() as client:
        run = await client.create_run("dispatcher", "Pack parcel 1.")
        await recorded_steps.wait_for("tool:pack_parcel")
        await fake_openai.wait_for_requests(3, WAIT)  # the courier's next model call is in flight

        await server.restart()

        events = await follow_to_stop(client, run.id)
        final = await client.get_run(run.id)

    assert final.status == RunStatus.RUN_STATUS_COMPLETED, final
    assert final.final_output == "Parcel packed."
    assert final.current_agent == "courier"
    # The courier's tool completed before the kill: the recovery replayed its recorded output.
    assert tools.lines() == ["start pack_parcel parcel-1", "end pack_parcel parcel-1"]
    assert len(fake_openai.requests) == 4
    assert fake_openai.abandoned == [2]
    assert function_call_outputs(fake_openai.requests[3])["call_pack"] == "pack_parcel parcel-1 done"
    assert (kinds(events).count("handoff"), kinds(events).count("tool_output")) == (1, 1)


async def test_a_recorded_call_the_new_build_cannot_read_fails_the_run_clearly(
    launch: LaunchReplica, fake_openai: FakeOpenAI, durable_database: str
) -> None:
    fake_openai.script(gate(text("Never delivered."), asyncio.Event()), text("Not asked for."))
    server = await launch("crash-format")
    async with server.client() as client:
        run = await client.create_run("assistant", "Hello.")
        await fake_openai.wait_for_requests(1, WAIT)
        await server.kill()
        # As if a newer build had recorded the segment's first call in a format this one lacks.
        connection = await asyncpg.connect(durable_database)
        try:
            await connection.execute(
                """INSERT INTO step_journal (run_id, segment, step, name, entry)
                   VALUES ($1, 1, '1', 'model:gpt-4.1', '{"version": 99, "kind": "response"}')""",
                run.id,
            )
        finally:
            await connection.close()

        await server.start()

        await follow_to_stop(client, run.id)
        final = await client.get_run(run.id)

    assert final.status == RunStatus.RUN_STATUS_FAILED, final
    assert final.error.code == "journal_incompatible"
    assert "format version 99" in final.error.message
    assert len(fake_openai.requests) == 1  # the recorded call was not made again


async def test_a_not_idempotent_tool_in_flight_at_a_kill_is_not_run_again(
    launch: LaunchReplica, fake_openai: FakeOpenAI, tools: ToolProbe
) -> None:
    fake_openai.script(
        tool_call("charge_card", {"label": "order-7"}),
        text("I could not confirm the charge; please check it."),
    )
    server = await launch("crash-once")
    async with server.client() as client:
        run = await client.create_run("worker", "Charge order 7.")
        await tools.wait_for("start charge_card order-7")

        await server.restart()

        events = await follow_to_stop(client, run.id)
        final = await client.get_run(run.id)

    assert final.status == RunStatus.RUN_STATUS_COMPLETED, final
    assert final.final_output == "I could not confirm the charge; please check it."
    assert tools.lines() == ["start charge_card order-7"]  # never started again
    assert len(fake_openai.requests) == 2
    [told] = function_call_outputs(fake_openai.requests[1]).values()
    assert "may or may not have completed" in told
    assert "charge_card" in told
    assert kinds(events).count("tool_output") == 1


async def test_a_run_waiting_for_approval_survives_a_kill_and_its_resumed_segment_another(
    launch: LaunchReplica, fake_openai: FakeOpenAI, tools: ToolProbe
) -> None:
    held = asyncio.Event()
    fake_openai.script(
        tool_call("ship_order", {"label": "order-9"}, "call_ship"),
        gate(text("Never delivered."), held),
        text("Order 9 shipped."),
    )
    tools.open_gate("order-9")
    server = await launch("crash-approval")
    async with server.client() as client:
        run = await client.create_run("worker", "Ship order 9.", wait=True, timeout=WAIT)

        await server.restart()  # nothing runs while the run waits for a person

        paused = await client.get_run(run.id)
        [waiting] = pending(paused)
        await client.approve(run.id, waiting.id)
        await client.resume(run.id)
        await fake_openai.wait_for_requests(2, WAIT)  # shipped; the next model call is in flight

        await server.restart()

        events = await follow_to_stop(client, run.id, paused.last_sequence)
        final = await client.get_run(run.id)

    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED, run
    assert paused.status == RunStatus.RUN_STATUS_INTERRUPTED
    assert (waiting.tool_name, waiting.call_id) == ("ship_order", "call_ship")
    assert final.status == RunStatus.RUN_STATUS_COMPLETED, final
    assert final.final_output == "Order 9 shipped."
    # The approved tool ran once: the resumed segment replayed its recorded output after the
    # second kill and repeated only the model call in flight.
    assert tools.lines() == ["start ship_order order-9", "end ship_order order-9"]
    assert len(fake_openai.requests) == 3
    assert fake_openai.abandoned == [1]
    assert fake_openai.requests[2]["input"] == fake_openai.requests[1]["input"]
    assert function_call_outputs(fake_openai.requests[2]) == {"call_ship": "ship_order order-9 done"}
    assert sequences(events) == list(range(paused.last_sequence + 1, final.last_sequence + 1))
    assert kinds(events).count("tool_output") == 1


async def test_an_orderly_shutdown_mid_call_leaves_the_segment_to_the_next_start(
    launch: LaunchReplica, fake_openai: FakeOpenAI
) -> None:
    held = asyncio.Event()
    fake_openai.script(gate(text("Never delivered."), held), text("Done after the deploy."))
    server = await launch("deploy")
    async with server.client() as client:
        run = await client.create_run("assistant", "Say something.")
        await fake_openai.wait_for_requests(1, WAIT)

        await server.stop()  # SIGTERM, as a deploy does
        exit_code = server.process.returncode if server.process else None
        await server.start()

        events = await follow_to_stop(client, run.id)
        final = await client.get_run(run.id)

    assert exit_code == 0, server.log
    assert final.status == RunStatus.RUN_STATUS_COMPLETED, final
    assert final.final_output == "Done after the deploy."
    assert len(fake_openai.requests) == 2
    assert fake_openai.abandoned == [0]
    assert fake_openai.requests[1]["input"] == fake_openai.requests[0]["input"]
    assert kinds(events).count("message_output") == 1
