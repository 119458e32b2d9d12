"""The `timestep` client subcommands (runs, approve, reject, resume, state, agents, schedules) as
real processes against the real in-process service and the fake model server: what they print,
with and without --json, and the exit codes scripts rely on.

The service runs in the test's event loop, so every CLI process is awaited asynchronously, with
a timeout. Nothing sleeps: a live stream is synchronised on the lines the CLI has printed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from timestep.app import TimestepService
from timestep.examples.agents import example_agents
from timestep.runtime.providers import ModelConfig
from timestep.runtime.registry import AgentRegistry, RegisteredAgent
from timestep.settings import WebhookSettings
from timestep_client import Run, RunStatus, TimestepClient

from tests.conftest import StartService
from tests.e2e.test_cli import REPO, cli_environment
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.harness import free_port, run_to_completion
from timestep_testing.helpers import EMAIL_ARGS, EMAIL_SENT, WAIT, function_call_outputs, unique

# Each process imports the service package before it talks: allow more than a plain RPC.
CLI_TIMEOUT: Final = 60.0


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines()]


async def timestep(target: str, *args: str, stdin: str | None = None) -> Result:
    """`python -m timestep --target TARGET ARGS`, run to completion."""
    argv = (sys.executable, "-m", "timestep", "--target", target, *args)
    return Result(
        *await run_to_completion(*argv, limit_s=CLI_TIMEOUT, stdin=stdin, cwd=REPO, env=cli_environment())
    )


def target(service: TimestepService) -> str:
    return f"127.0.0.1:{service.port}"


async def interrupted_run(client: TimestepClient, fake_openai: FakeOpenAI, call_id: str) -> Run:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id=call_id))
    run = await client.create_run("assistant", "Tell Bob I'm running late", wait=True, timeout=WAIT)
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED, run
    return run


# ----- human in the loop ---------------------------------------------------------------------


async def test_a_full_approval_cycle_through_the_cli(
    service: TimestepService, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id="call_cli_hitl"))

    created = await timestep(
        target(service), "--json", "runs", "create", "assistant", "Tell Bob I'm late", "--wait"
    )

    assert created.code == 3, created.stderr  # paused, awaiting approval
    run = created.json()
    assert run["status"] == "RUN_STATUS_INTERRUPTED"
    [interruption] = run["interruptions"]
    assert interruption["tool_name"] == "send_email"
    assert interruption["status"] == "INTERRUPTION_STATUS_PENDING"
    assert json.loads(interruption["arguments_json"]) == EMAIL_ARGS
    # The progress display (plain lines: stderr is not a terminal) followed the run's events.
    assert f"waiting for run {run['id']}" in created.stderr
    assert "send_email" in created.stderr

    approved = await timestep(target(service), "--json", "approve", run["id"], interruption["id"])

    assert approved.code == 0, approved.stderr
    assert approved.json()["status"] == "INTERRUPTION_STATUS_APPROVED"

    fake_openai.script(text("Done: Bob knows you are running late."))
    resumed = await timestep(target(service), "resume", run["id"], "--wait")

    assert resumed.code == 0, resumed.stderr
    assert "COMPLETED" in resumed.stdout
    assert "output: Done: Bob knows you are running late." in resumed.stdout
    assert function_call_outputs(fake_openai.requests[-1]) == {"call_cli_hitl": EMAIL_SENT}


async def test_reject_with_a_message_tells_the_model_and_resume_json_returns_the_run(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    run = await interrupted_run(client, fake_openai, "call_cli_reject")

    rejected = await timestep(
        target(service), "reject", run.id, run.interruptions[0].id, "--message", "Not today.", "--json"
    )

    assert rejected.code == 0, rejected.stderr
    assert rejected.json()["status"] == "INTERRUPTION_STATUS_REJECTED"
    assert rejected.json()["message"] == "Not today."

    fake_openai.script(text("OK, I did not email Bob."))
    resumed = await timestep(target(service), "--json", "resume", run.id, "--wait")

    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["status"] == "RUN_STATUS_COMPLETED"
    assert resumed.json()["final_output"] == "OK, I did not email Bob."
    assert "Not today." in function_call_outputs(fake_openai.requests[-1])["call_cli_reject"]


# ----- runs ----------------------------------------------------------------------------------


async def test_runs_list_and_get_print_the_runs_as_json(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("cli-session")
    fake_openai.script(text("First."), text("Second."))
    first = await client.create_run("assistant", "One", session_id=session, wait=True, timeout=WAIT)
    second = await client.create_run("assistant", "Two", session_id=session, wait=True, timeout=WAIT)

    listed = await timestep(target(service), "--json", "runs", "list", "--session", session, "--limit", "1")

    assert listed.code == 0, listed.stderr
    page = listed.json()
    assert [run["id"] for run in page["runs"]] == [second.id]  # newest first
    assert page["next_page_token"]
    rest = await timestep(
        target(service),
        "runs",
        "list",
        "--session",
        session,
        "--page-token",
        page["next_page_token"],
        "--json",
    )
    assert [run["id"] for run in rest.json()["runs"]] == [first.id]

    got = await timestep(target(service), "--json", "runs", "get", first.id)

    assert got.code == 0, got.stderr
    run = got.json()
    assert run["id"] == first.id
    assert run["agent"] == "assistant"
    assert run["status"] == "RUN_STATUS_COMPLETED"
    assert run["session_id"] == session
    assert run["final_output"] == "First."
    assert run["usage"]["requests"] == "1"  # int64 fields are strings in proto JSON
    assert run["interruptions"] == []

    human = await timestep(target(service), "runs", "get", first.id)
    assert human.stdout.startswith(f"run {first.id}  COMPLETED  agent=assistant")
    assert "output: First." in human.stdout


async def test_runs_events_prints_every_stored_event_in_order_and_after_a_sequence(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(text("All done."))
    run = await client.create_run("assistant", "Hi", wait=True, timeout=WAIT)

    streamed = await timestep(target(service), "--json", "runs", "events", run.id)

    assert streamed.code == 0, streamed.stderr
    events = streamed.json_lines()
    sequences = [int(event["sequence"]) for event in events]
    assert sequences == list(range(1, len(events) + 1))
    assert sequences[-1] == run.last_sequence
    assert events[0]["status_changed"]["status"] == "RUN_STATUS_QUEUED"
    assert any(event.get("final_output", {}).get("output") == "All done." for event in events)

    after = await timestep(target(service), "--json", "runs", "events", run.id, "--after", "2")
    assert [int(event["sequence"]) for event in after.json_lines()] == sequences[2:]


async def test_runs_events_follows_a_live_run_printing_text_deltas_inline(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    release = asyncio.Event()
    fake_openai.script(text("Streaming to the terminal.", chunks=4, hold=release))
    run = await client.create_run("assistant", "Hi")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "timestep",
        "--target",
        target(service),
        "runs",
        "events",
        run.id,
        cwd=REPO,
        env=cli_environment(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:

        async def read_until_running() -> list[str]:
            assert process.stdout is not None
            lines: list[str] = []
            while line := (await process.stdout.readline()).decode():
                lines.append(line)
                if "status RUNNING" in line:
                    return lines
            raise AssertionError(f"the CLI ended before the run was RUNNING: {lines}")

        before = await asyncio.wait_for(read_until_running(), CLI_TIMEOUT)
        release.set()  # the model answers only now, with the CLI subscribed
        rest, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0, stderr.decode()
    lines = "".join([*before, rest.decode()]).splitlines()
    # The deltas, written as they came, make up a line of their own before the stored events.
    assert "Streaming to the terminal." in lines
    assert any(line.endswith("final output: Streaming to the terminal.") for line in lines)
    assert lines.index("Streaming to the terminal.") < len(lines) - 1


async def test_runs_cancel_stops_a_run_and_its_events_exit_1(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    run = await interrupted_run(client, fake_openai, "call_cli_cancel")

    cancelled = await timestep(
        target(service), "--json", "runs", "cancel", run.id, "--reason", "Changed my mind."
    )

    assert cancelled.code == 0, cancelled.stderr
    assert cancelled.json()["status"] == "RUN_STATUS_CANCELLED"
    assert cancelled.json()["error"] == {"code": "cancelled", "message": "Changed my mind."}
    assert (await client.get_run(run.id)).status == RunStatus.RUN_STATUS_CANCELLED

    events = await timestep(target(service), "runs", "events", run.id)
    assert events.code == 1  # the run ended CANCELLED
    assert "status CANCELLED" in events.stdout


async def test_runs_create_without_wait_returns_the_queued_run(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(text("Later."))

    created = await timestep(
        target(service), "--json", "runs", "create", "assistant", "Hi", "--metadata", "team=ops"
    )

    assert created.code == 0, created.stderr
    run = created.json()
    assert run["metadata"] == {"team": "ops"}
    events = [event async for event in client.stream_events(run["id"])]
    assert events[-1].status_changed.status == RunStatus.RUN_STATUS_COMPLETED


# ----- state ---------------------------------------------------------------------------------


async def test_state_export_in_both_formats_and_import_round_trip(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    run = await interrupted_run(client, fake_openai, "call_cli_state")

    typescript = await timestep(target(service), "state", "export", run.id, "--format", "typescript")
    assert typescript.code == 0, typescript.stderr
    assert "$schemaVersion" in json.loads(typescript.stdout)

    state_file = tmp_path / "state.json"
    exported = await timestep(
        target(service), "--json", "state", "export", run.id, "--format", "python", "-o", str(state_file)
    )
    assert exported.code == 0, exported.stderr
    assert "$schemaVersion" in json.loads(state_file.read_text())
    assert exported.json()["agent"] == "assistant"
    assert exported.json()["format"] == "STATE_FORMAT_PYTHON"
    assert "state_json" not in exported.json()

    from_file = await timestep(target(service), "--json", "state", "import", "assistant", str(state_file))
    from_stdin = await timestep(
        target(service), "--json", "state", "import", "assistant", "-", stdin=typescript.stdout
    )

    for imported in (from_file, from_stdin):
        assert imported.code == 0, imported.stderr
        new_run = imported.json()
        assert new_run["id"] != run.id
        assert new_run["status"] == "RUN_STATUS_INTERRUPTED"
        assert [i["tool_name"] for i in new_run["interruptions"]] == ["send_email"]

    # The imported run continues like the original would have.
    imported_run = from_file.json()
    await client.approve(imported_run["id"], imported_run["interruptions"][0]["id"])
    fake_openai.script(text("Emailed Bob."))
    resumed = await timestep(target(service), "resume", imported_run["id"], "--wait", "--json")
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["final_output"] == "Emailed Bob."


# ----- agents and schedules ------------------------------------------------------------------


async def test_agents_list(service: TimestepService) -> None:
    listed = await timestep(target(service), "--json", "agents", "list")

    assert listed.code == 0, listed.stderr
    assert [agent["name"] for agent in listed.json()["agents"]] == ["assistant", "billing"]

    human = await timestep(target(service), "agents", "list")
    assert "send_email (needs approval)" in human.stdout
    assert "approval_timeout" not in human.stdout  # neither agent has a default of its own


async def test_agents_list_shows_an_agents_default_approval_timeout(
    start_service: StartService, model_config: ModelConfig
) -> None:
    assistant, billing = example_agents("gpt-4.1")
    registry = AgentRegistry([assistant, RegisteredAgent(billing, approval_timeout=timedelta(minutes=15))])
    async with start_service(model_config, registry=registry) as service:
        human = await timestep(target(service), "agents", "list")
        listed = await timestep(target(service), "--json", "agents", "list")

    assert human.code == 0, human.stderr
    lines = {line.split()[0]: line for line in human.stdout.splitlines()}
    assert "approval_timeout=900s" in lines["billing"]
    assert "approval_timeout" not in lines["assistant"]
    described = {agent["name"]: agent for agent in listed.json()["agents"]}
    assert described["billing"]["approval_timeout"] == "900s"


async def test_schedules_create_list_pause_resume_get_and_delete(service: TimestepService) -> None:
    schedule_id = unique("cli-schedule")
    at = target(service)

    created = await timestep(
        at, "--json", "schedules", "create", schedule_id, "--cron", "0 9 * * 1-5",
        "--agent", "assistant", "--input", "Good morning", "--metadata", "team=ops",
    )  # fmt: skip

    assert created.code == 0, created.stderr
    assert created.json()["state"] == "SCHEDULE_STATE_ACTIVE"
    assert created.json()["metadata"] == {"team": "ops"}
    listed = await timestep(at, "--json", "schedules", "list")
    assert schedule_id in [schedule["id"] for schedule in listed.json()["schedules"]]
    paused = await timestep(at, "--json", "schedules", "pause", schedule_id)
    assert paused.json()["state"] == "SCHEDULE_STATE_PAUSED"
    resumed = await timestep(at, "schedules", "resume", schedule_id)
    assert f"{schedule_id}  ACTIVE" in resumed.stdout

    duplicate = await timestep(
        at, "schedules", "create", schedule_id, "--cron", "0 9 * * *", "--agent", "assistant", "--input", "Hi"
    )
    assert duplicate.code == 5, duplicate.stderr  # ALREADY_EXISTS

    deleted = await timestep(at, "schedules", "delete", schedule_id)
    assert deleted.code == 0, deleted.stderr
    gone = await timestep(at, "schedules", "get", schedule_id)
    assert gone.code == 4
    assert "NOT_FOUND" in gone.stderr


# ----- exit codes ----------------------------------------------------------------------------


async def test_an_unknown_run_exits_4_with_the_servers_message(service: TimestepService) -> None:
    result = await timestep(target(service), "runs", "get", "run_doesnotexist")

    assert result.code == 4
    assert result.stdout == ""
    assert result.stderr.startswith("timestep: NOT_FOUND:")
    assert "run_doesnotexist" in result.stderr


async def test_a_refused_request_exits_5_with_the_reason(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(text("Finished."))
    run = await client.create_run("assistant", "Hi", wait=True, timeout=WAIT)

    not_paused = await timestep(target(service), "state", "export", run.id)
    bad_cron = await timestep(
        target(service), "schedules", "create", unique("bad"), "--cron", "every monday",
        "--agent", "assistant", "--input", "Hi",
    )  # fmt: skip

    assert not_paused.code == 5  # FAILED_PRECONDITION
    assert "FAILED_PRECONDITION" in not_paused.stderr
    assert "(reason: RUN_NOT_INTERRUPTED)" in not_paused.stderr
    assert bad_cron.code == 5  # INVALID_ARGUMENT
    assert "INVALID_ARGUMENT" in bad_cron.stderr


async def test_an_unreachable_service_exits_6() -> None:
    result = await timestep(f"127.0.0.1:{free_port()}", "agents", "list")

    assert result.code == 6
    assert "UNAVAILABLE" in result.stderr


async def test_a_bad_command_line_exits_2_and_help_lists_exit_codes() -> None:
    unused = f"127.0.0.1:{free_port()}"
    missing = await timestep(unused, "runs", "get")
    bad_status = await timestep(unused, "runs", "list", "--status", "sleeping")
    help_text = await timestep(unused, "--help")

    assert missing.code == 2
    assert "usage: timestep runs get" in missing.stderr
    assert bad_status.code == 2
    assert help_text.code == 0
    assert "Exit codes:" in help_text.stdout
    for command in ("runs", "approve", "reject", "resume", "state", "agents", "schedules"):
        assert command in help_text.stdout


# ----- health --------------------------------------------------------------------------------


async def test_health_exits_0_while_serving_and_6_when_the_service_cannot_be_reached(
    service: TimestepService,
) -> None:
    serving = await timestep(target(service), "health", "--json")
    assert (serving.code, serving.json()["status"]) == (0, "SERVING")

    one = await timestep(target(service), "health", "--service", "timestep.v1.RunService")
    assert (one.code, one.stdout.strip()) == (0, "SERVING")

    unreachable = await timestep(f"127.0.0.1:{free_port()}", "health", "--timeout", "2")
    assert unreachable.code == 6, unreachable.stderr


async def test_an_approval_with_edited_arguments_resumes_the_run_in_one_command(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    run = await interrupted_run(client, fake_openai, "call_cli_edit")
    [waiting] = run.interruptions
    fake_openai.script(text("Sent to Carol."))
    edited = {**EMAIL_ARGS, "to": "carol@example.com"}

    decided = await timestep(
        target(service),
        "approve",
        run.id,
        waiting.id,
        "--arguments",
        json.dumps(edited),
        "--decided-by",
        "alice",
        "--resume",
        "--wait",
    )
    refused = await timestep(target(service), "approve", run.id, waiting.id, "--arguments", "[1]")

    assert decided.code == 0, decided.stderr
    assert "edited to" in decided.stdout
    assert "Sent to Carol." in decided.stdout
    assert function_call_outputs(fake_openai.requests[-1]) == {
        "call_cli_edit": "Email to carol@example.com with subject 'Running late' sent."
    }
    assert refused.code == 2  # a usage error: not a JSON object
    assert "JSON object" in refused.stderr


async def test_webhooks_through_the_cli_show_the_secret_once_and_list_deliveries(
    start_service: StartService, model_config: ModelConfig, durable_database: str
) -> None:
    # A database of its own, where no run happens: nothing is ever sent to the URL.
    async with start_service(
        model_config, database_url=durable_database, webhooks=WebhookSettings(allow_private=True)
    ) as service:
        await _webhooks_through_the_cli(service)


async def _webhooks_through_the_cli(service: TimestepService) -> None:
    url = "http://127.0.0.1:9/timestep"
    created = await timestep(target(service), "--json", "webhooks", "create", url, "--event", "run.failed")
    webhook = created.json()
    listed = await timestep(target(service), "webhooks", "list", "--limit", "500")
    shown = await timestep(target(service), "webhooks", "get", webhook["webhook"]["id"])
    deliveries = await timestep(target(service), "webhooks", "deliveries", webhook["webhook"]["id"])
    overlapping = await timestep(
        target(service), "--json", "webhooks", "rotate", webhook["webhook"]["id"], "--overlap", "1h"
    )
    revoked = await timestep(
        target(service), "webhooks", "rotate", webhook["webhook"]["id"], "--overlap", "0"
    )
    bad_overlap = await timestep(
        target(service), "webhooks", "rotate", webhook["webhook"]["id"], "--overlap", "-5m"
    )
    deleted = await timestep(target(service), "webhooks", "delete", webhook["webhook"]["id"])
    missing = await timestep(target(service), "webhooks", "get", webhook["webhook"]["id"])
    refused = await timestep(target(service), "webhooks", "create", "http://169.254.169.254/")

    assert created.code == 0, created.stderr
    assert webhook["secret"].startswith("whsec_")
    assert webhook["webhook"]["event_types"] == ["run.failed"]
    assert webhook["webhook"]["id"] in listed.stdout
    assert webhook["secret"] not in listed.stdout + shown.stdout
    assert deliveries.stdout.strip() == "no deliveries"
    rotated = overlapping.json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != webhook["secret"]
    assert "previous_secret_expire_time" in rotated["webhook"]
    assert revoked.code == 0, revoked.stderr
    assert "new signing secret (shown once): whsec_" in revoked.stdout
    assert "previous-secret-until" not in revoked.stdout
    assert bad_overlap.code == 2
    assert "--overlap" in bad_overlap.stderr
    assert deleted.code == 0
    assert missing.code == 4
    assert refused.code == 5
    assert "WEBHOOK_DESTINATION_FORBIDDEN" in refused.stderr
