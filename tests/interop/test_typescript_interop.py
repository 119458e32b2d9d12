"""A paused run moves between the Python service and the TypeScript Agents SDK, both ways.

(a) A run pauses in the service; TypeScript fetches its state over gRPC (GetRunState,
    TYPESCRIPT), decides what is left and finishes it against the same fake model server.
(b) A run pauses in TypeScript; the state is imported over gRPC (ImportRunState), decided over
    gRPC and resumed in the service.

Each cross-language resume is compared with a same-language one (TypeScript: pause, save, load,
resume; Python: the service alone): the model request after the resume must be the same, up to
the ids the fake model server assigns (its counters depend on how many requests came before).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from timestep import ids
from timestep.api.auth import DEFAULT_TENANT
from timestep.app import TimestepService
from timestep.store.sessions import PostgresSession
from timestep_client import Run, RunStatus, TimestepClient

from tests.interop import golden_vectors as golden
from tests.interop.scenarios import CONTEXT, SCENARIOS, Decision, Scenario
from tests.interop.typescript import PACKAGE, run_node, run_scenario
from timestep_testing.fakes.openai_responses import JSON, FakeOpenAI, Turn, text
from timestep_testing.helpers import EMAIL_ARGS, EMAIL_SENT, function_call_outputs, unique

pytestmark = pytest.mark.usefixtures("typescript_package")

SCENARIO = {scenario.name: scenario for scenario in SCENARIOS}
README = Path(__file__).resolve().parents[2] / "README.md"
DONE = "Done: everyone has been told."


def normalized(value: Any) -> Any:
    """`value` (a model request, session items) with the ids the fake model server assigned
    replaced by placeholders."""
    return json.loads(re.sub(r'"(fc|msg|resp|rs)_[0-9a-f]{32}"', r'"\1_*"', json.dumps(value)))


def answer() -> Turn:
    return text(DONE)


@dataclass(frozen=True)
class Case:
    """A scenario, with the decisions made before the state changes language (`scenario.decisions`)
    and those made after (`later`)."""

    scenario: Scenario
    later: Sequence[Decision] = ()
    stream: bool = False

    @property
    def id(self) -> str:
        return self.scenario.name + ("-streamed" if self.stream else "")


def approve(call_id: str) -> Decision:
    return Decision(call_id, True)


CASES = [
    Case(SCENARIO["pending_approval"], later=[approve("call_bob")], stream=True),
    Case(SCENARIO["approved_always_before_saving"]),
    Case(SCENARIO["rejected_always_with_message_before_saving"], stream=True),
    Case(
        replace(SCENARIO["two_interruptions_one_approved_one_rejected"], decisions=[approve("call_bob")]),
        later=[Decision("call_eve", False, message="Eve already knows.")],
    ),
    Case(SCENARIO["handoff_then_refund_approval"], later=[approve("call_refund")]),
]


# ----- helpers -----------------------------------------------------------------------------------


async def pause_in_service(
    client: TimestepClient, fake: FakeOpenAI, scenario: Scenario, session_id: str = ""
) -> Run:
    fake.script(*scenario.turns())
    run = await client.create_run("assistant", scenario.input, session_id=session_id, wait=True)
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    return run


async def decide_over_grpc(client: TimestepClient, run: Run, decisions: Sequence[Decision]) -> None:
    interruption = {i.call_id: i for i in run.interruptions}
    for decision in decisions:
        if decision.approve:
            await client.approve(run.id, interruption[decision.call_id].id, always=decision.always)
        else:
            await client.reject(
                run.id, interruption[decision.call_id].id, decision.message or "", always=decision.always
            )


async def typescript_alone(spec: dict[str, Any], turns: Sequence[Turn]) -> tuple[Any, JSON]:
    """The TypeScript SDK pausing, saving, loading and resuming on its own (`native`): its
    outcome and the model request after the resume."""
    async with FakeOpenAI() as baseline:
        baseline.script(*turns, answer())
        outcome = await run_scenario("native", spec, model_url=baseline.base_url)
        return outcome, baseline.requests[-1]


async def service_alone(
    client: TimestepClient, fake: FakeOpenAI, scenario: Scenario, decisions: Sequence[Decision]
) -> Run:
    """The service pausing, deciding and resuming on its own."""
    run = await pause_in_service(client, fake, scenario)
    await decide_over_grpc(client, run, decisions)
    fake.script(answer())
    return await client.resume(run.id, wait=True)


async def session_items(service: TimestepService, session_id: str) -> list[Any]:
    """The items the service (without API keys: the anonymous tenant's) keeps for `session_id`."""
    return await PostgresSession(ids.scoped(DEFAULT_TENANT, session_id), service.pool).get_items()


def grpc_address(service: TimestepService) -> str:
    return f"127.0.0.1:{service.port}"


# ----- (a) paused in the service, finished in TypeScript ----------------------------------------


def readme_typescript() -> str:
    section = README.read_text().split("## Resume in TypeScript", 1)[1]
    match = re.search(r"```ts\n(.*?)```", section, re.DOTALL)
    assert match, "the README lost its TypeScript resume example"
    return match.group(1)


def test_the_readme_shows_the_typescript_resume_code_the_tests_run() -> None:
    assert readme_typescript() == (PACKAGE / "src" / "resume_in_typescript.ts").read_text()


async def test_a_run_paused_in_the_service_is_approved_and_finished_in_typescript_with_the_readme_code(
    client: TimestepClient, fake_openai: FakeOpenAI, service: TimestepService
) -> None:
    scenario = SCENARIO["pending_approval"]
    run = await pause_in_service(client, fake_openai, scenario)
    fake_openai.script(answer())

    printed = await run_node(
        "resume_in_typescript", grpc_address(service), run.id, model_url=fake_openai.base_url
    )

    assert printed.splitlines() == [f"approving send_email({json.dumps(EMAIL_ARGS)})", DONE]
    resumed = fake_openai.requests[-1]
    assert function_call_outputs(resumed) == {"call_bob": EMAIL_SENT}
    _, alone = await typescript_alone(
        {**scenario.spec(), "resumeDecisions": [approve("call_bob").to_spec()]}, scenario.turns()
    )
    assert normalized(resumed) == normalized(alone)
    assert (await client.get_run(run.id)).status == RunStatus.RUN_STATUS_INTERRUPTED, (
        "the export moves nothing"
    )


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_a_run_paused_in_the_service_resumes_in_typescript_as_if_it_had_paused_there(
    case: Case, client: TimestepClient, fake_openai: FakeOpenAI, service: TimestepService
) -> None:
    scenario = case.scenario
    run = await pause_in_service(client, fake_openai, scenario)
    await decide_over_grpc(client, run, scenario.decisions)
    fake_openai.script(answer())

    finished = await run_scenario(
        "resume-from-service",
        {
            "address": grpc_address(service),
            "runId": run.id,
            "decisions": [d.to_spec() for d in case.later],
            "stream": case.stream,
        },
        model_url=fake_openai.base_url,
    )

    assert finished["exported"] == {
        "format": "TYPESCRIPT",
        "schemaVersion": "1.22",
        "agent": "assistant",
        "sessionId": "",
    }
    spec = {**scenario.spec(), "stream": case.stream, "resumeDecisions": [d.to_spec() for d in case.later]}
    alone, alone_request = await typescript_alone(spec, scenario.turns())
    assert finished["finalOutput"] == alone["finalOutput"] == DONE
    assert finished["lastAgent"] == alone["lastAgent"] == run.current_agent
    assert finished["usage"] == alone["usage"], "the usage of the service's model calls carries over"
    assert finished["usage"]["requests"] == run.usage.requests + 1
    assert normalized(fake_openai.requests[-1]) == normalized(alone_request)


async def test_a_run_paused_twice_in_the_service_resumes_in_typescript(
    client: TimestepClient, fake_openai: FakeOpenAI, service: TimestepService
) -> None:
    scenario = SCENARIO["second_pause_after_approval"]
    run = await pause_in_service(client, fake_openai, scenario)
    await decide_over_grpc(client, run, scenario.earlier_decisions or ())
    run = await client.resume(run.id, wait=True)
    assert [i.call_id for i in run.interruptions if i.segment == 2] == ["call_eve"]
    fake_openai.script(answer())

    finished = await run_scenario(
        "resume-from-service",
        {"address": grpc_address(service), "runId": run.id, "decisions": [approve("call_eve").to_spec()]},
        model_url=fake_openai.base_url,
    )

    _, alone_request = await typescript_alone(
        {**scenario.spec(), "resumeDecisions": [approve("call_eve").to_spec()]}, scenario.turns()
    )
    assert finished["finalOutput"] == DONE
    assert function_call_outputs(fake_openai.requests[-1]).keys() == {"call_bob", "call_eve"}
    assert normalized(fake_openai.requests[-1]) == normalized(alone_request)


async def test_the_session_id_goes_with_the_state_and_typescript_saves_exactly_the_items_it_adds(
    client: TimestepClient, fake_openai: FakeOpenAI, service: TimestepService
) -> None:
    scenario = SCENARIO["session"]
    session_id = unique("conversation")
    run = await pause_in_service(client, fake_openai, scenario, session_id)
    fake_openai.script(answer())
    later = [approve("call_bob").to_spec()]

    finished = await run_scenario(
        "resume-from-service",
        {"address": grpc_address(service), "runId": run.id, "decisions": later},
        model_url=fake_openai.base_url,
    )

    assert finished["exported"]["sessionId"] == finished["sessionId"] == session_id
    alone, _ = await typescript_alone({**scenario.spec(), "resumeDecisions": later}, scenario.turns())
    assert [item["type"] for item in finished["sessionItems"]] == ["function_call_result", "message"]
    assert normalized(finished["sessionItems"]) == normalized(alone["sessionItems"]), (
        "the resume saves what a TypeScript resume saves: nothing the service saved already"
    )


async def test_every_typescript_golden_state_made_from_a_python_one_loads_in_the_typescript_sdk() -> None:
    states = [golden.load(scenario.name, "python_to_typescript") for scenario in SCENARIOS]

    loaded = await run_scenario("inspect", {"states": states}, model_url="http://127.0.0.1:9/unused")

    for scenario, state in zip(SCENARIOS, loaded, strict=True):
        native = json.loads(golden.load(scenario.name, "typescript"))
        assert state["interruptions"] == [
            i["rawItem"]["callId"] for i in native["currentStep"]["data"]["interruptions"]
        ]
        assert state["context"] == CONTEXT


# ----- (b) paused in TypeScript, finished in the service ----------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_a_run_paused_in_typescript_is_imported_decided_and_resumed_in_the_service_as_if_paused_there(
    case: Case, client: TimestepClient, fake_openai: FakeOpenAI, service: TimestepService
) -> None:
    scenario = case.scenario
    fake_openai.script(*scenario.turns(), answer())

    moved = await run_scenario(
        "pause-and-import",
        {
            **scenario.spec(),
            "stream": case.stream,
            "address": grpc_address(service),
            "serviceDecisions": [d.to_spec() for d in case.later],
        },
        model_url=fake_openai.base_url,
    )

    imported, run = moved["imported"], moved["run"]
    assert (imported["format"], imported["schemaVersion"]) == ("TYPESCRIPT", "1.22")
    statuses = {
        i["callId"]: (i["status"], i.get("always", False), i.get("message", ""))
        for i in imported["run"]["interruptions"]
    }
    assert statuses == {
        **{d.call_id: ("INTERRUPTION_STATUS_PENDING", False, "") for d in case.later},
        **{
            d.call_id: (
                "INTERRUPTION_STATUS_" + ("APPROVED" if d.approve else "REJECTED"),
                d.always,
                d.message or "",
            )
            for d in scenario.decisions
        },
    }, "decisions made before saving arrive decided"
    assert (run["status"], run["finalOutput"]) == ("RUN_STATUS_COMPLETED", DONE)
    assert run["currentAgent"] == imported["run"]["currentAgent"]
    cross_request = fake_openai.requests[-1]

    alone = await service_alone(client, fake_openai, scenario, [*scenario.decisions, *case.later])

    assert (alone.final_output, alone.current_agent) == (DONE, run["currentAgent"])
    assert normalized(cross_request) == normalized(fake_openai.requests[-1])
    assert int(run["usage"]["requests"]) == 1, (
        "only the resumed segment's model call counts for an imported run"
    )


async def test_a_state_imported_with_its_session_id_continues_that_session_without_duplicates(
    client: TimestepClient, fake_openai: FakeOpenAI, service: TimestepService
) -> None:
    scenario = replace(SCENARIO["session"], session_id=unique("conversation"))
    fake_openai.script(*scenario.turns(), answer())

    moved = await run_scenario(
        "pause-and-import",
        {
            **scenario.spec(),
            "address": grpc_address(service),
            "serviceDecisions": [approve("call_bob").to_spec()],
        },
        model_url=fake_openai.base_url,
    )

    assert moved["run"]["sessionId"] == scenario.session_id
    cross_items = await session_items(service, scenario.session_id or "")
    native_session = unique("conversation")
    alone = await pause_in_service(client, fake_openai, scenario, native_session)
    saved_at_pause = len(await session_items(service, native_session))
    await decide_over_grpc(client, alone, [approve("call_bob")])
    fake_openai.script(answer())
    await client.resume(alone.id, wait=True)
    added_by_resume = (await session_items(service, native_session))[saved_at_pause:]
    assert [item.get("type", "message") for item in cross_items] == ["function_call_output", "message"]
    assert normalized(cross_items) == normalized(added_by_resume), (
        "the service saves what its own resume saves: nothing TypeScript saved already"
    )


async def test_a_run_paused_in_typescript_and_decided_over_grpc_finishes_back_in_typescript(
    client: TimestepClient, fake_openai: FakeOpenAI, service: TimestepService
) -> None:
    scenario = SCENARIO["two_interruptions_one_approved_one_rejected"]
    fake_openai.script(*scenario.turns())
    paused = await run_scenario("pause", {**scenario.spec(), "decisions": []}, model_url=fake_openai.base_url)
    run = await client.import_state("assistant", paused["state"])
    await decide_over_grpc(client, run, scenario.decisions)
    fake_openai.script(answer())

    finished = await run_scenario(
        "resume-from-service",
        {"address": grpc_address(service), "runId": run.id},
        model_url=fake_openai.base_url,
    )

    assert finished["finalOutput"] == DONE
    alone, alone_request = await typescript_alone(scenario.spec(), scenario.turns())
    assert finished["usage"] == alone["usage"]
    assert normalized(fake_openai.requests[-1]) == normalized(alone_request)


# ----- edited arguments, across the conversion -----------------------------------------------

EDITED = {"to": "carol@example.com", "subject": "Running late", "body": "See you at 10:30."}
EDITED_SENT = "Email to carol@example.com with subject 'Running late' sent."


def function_call_arguments(request: JSON) -> dict[str, Any]:
    """The arguments of each function call a model request carries, by call id."""
    return {
        item["call_id"]: json.loads(item["arguments"])
        for item in request["input"]
        if isinstance(item, dict) and item.get("type") == "function_call"
    }


async def test_a_run_paused_in_the_service_and_approved_with_edited_arguments_runs_them_in_typescript(
    client: TimestepClient, fake_openai: FakeOpenAI, service: TimestepService
) -> None:
    run = await pause_in_service(client, fake_openai, SCENARIO["pending_approval"])
    [waiting] = run.interruptions
    await client.approve(run.id, waiting.id, arguments=EDITED)
    fake_openai.script(answer())

    finished = await run_scenario(
        "resume-from-service",
        {"address": grpc_address(service), "runId": run.id},
        model_url=fake_openai.base_url,
    )

    assert finished["finalOutput"] == DONE
    resumed = fake_openai.requests[-1]
    assert function_call_outputs(resumed) == {"call_bob": EDITED_SENT}
    assert function_call_arguments(resumed) == {"call_bob": EDITED}


async def test_a_run_paused_in_typescript_and_approved_with_edited_arguments_runs_them_in_the_service(
    client: TimestepClient, fake_openai: FakeOpenAI, service: TimestepService
) -> None:
    scenario = SCENARIO["pending_approval"]
    fake_openai.script(*scenario.turns())
    paused = await run_scenario("pause", {**scenario.spec(), "decisions": []}, model_url=fake_openai.base_url)
    run = await client.import_state("assistant", paused["state"])
    [waiting] = run.interruptions
    fake_openai.script(answer())

    response = await client.approve_and_resume(run.id, waiting.id, arguments=EDITED, wait=True)

    assert response.run.status == RunStatus.RUN_STATUS_COMPLETED
    assert response.run.final_output == DONE
    resumed = fake_openai.requests[-1]
    assert function_call_outputs(resumed) == {"call_bob": EDITED_SENT}
    assert function_call_arguments(resumed) == {"call_bob": EDITED}


async def test_a_run_paused_in_typescript_and_edited_over_grpc_finishes_back_in_typescript(
    client: TimestepClient, fake_openai: FakeOpenAI, service: TimestepService
) -> None:
    scenario = SCENARIO["pending_approval"]
    fake_openai.script(*scenario.turns())
    paused = await run_scenario("pause", {**scenario.spec(), "decisions": []}, model_url=fake_openai.base_url)
    run = await client.import_state("assistant", paused["state"])
    await client.approve(run.id, run.interruptions[0].id, arguments=EDITED)
    fake_openai.script(answer())

    finished = await run_scenario(
        "resume-from-service",
        {"address": grpc_address(service), "runId": run.id},
        model_url=fake_openai.base_url,
    )

    assert finished["finalOutput"] == DONE
    assert function_call_outputs(fake_openai.requests[-1]) == {"call_bob": EDITED_SENT}
    assert function_call_arguments(fake_openai.requests[-1]) == {"call_bob": EDITED}
