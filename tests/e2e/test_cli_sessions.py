"""`timestep sessions list|get|items|delete` and `timestep runs delete|keep` as real processes
against the in-process service: what they print, with and without --json, and their exit codes."""

from __future__ import annotations

import json

from timestep.app import TimestepService
from timestep_client import RunStatus, TimestepClient

from tests.e2e.test_cli_commands import target, timestep
from timestep_testing.fakes.openai_responses import FakeOpenAI, text
from timestep_testing.helpers import WAIT, unique


async def test_a_conversation_listed_read_and_deleted_through_the_cli(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    session = unique("cli-session")
    fake_openai.script(text("Hello, Ada."))
    run = await client.create_run("assistant", "I am Ada.", session_id=session, wait=True, timeout=WAIT)
    assert run.status == RunStatus.RUN_STATUS_COMPLETED

    listed = await timestep(target(service), "sessions", "list", "--limit", "500")
    got = await timestep(target(service), "--json", "sessions", "get", session)
    items = await timestep(target(service), "sessions", "items", session, "--json")

    assert listed.code == 0, listed.stderr
    assert any(line.startswith(f"{session}  1 run(s)  2 item(s)") for line in listed.stdout.splitlines())
    assert (got.code, got.json()["id"], got.json()["item_count"]) == (0, session, "2")
    assert [json.loads(item["item_json"]).get("role") for item in items.json()["items"]] == [
        "user",
        "assistant",
    ]
    assert {item["run_id"] for item in items.json()["items"]} == {run.id}

    deleted = await timestep(target(service), "sessions", "delete", session, "--runs")
    assert (deleted.code, deleted.stdout.strip()) == (0, f"deleted session {session}: 2 item(s), 1 run(s)")
    missing = await timestep(target(service), "sessions", "get", session)
    assert missing.code == 4
    assert "SESSION_NOT_FOUND" in missing.stderr
    again = await timestep(target(service), "sessions", "delete", session, "--allow-missing")
    assert again.code == 0, again.stderr


async def test_runs_are_kept_and_deleted_through_the_cli(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(text("done"))
    run = await client.create_run("assistant", "hi", wait=True, timeout=WAIT)

    kept = await timestep(target(service), "runs", "keep", run.id)
    assert (kept.code, kept.stdout.strip()) == (0, f"run {run.id} kept: retention never deletes it")
    assert (await client.get_run(run.id)).keep
    deleted = await timestep(target(service), "--json", "runs", "delete", run.id)
    assert (deleted.code, deleted.json()["deleted"]) == (0, True)
    missing = await timestep(target(service), "runs", "delete", run.id)
    assert missing.code == 4
    assert "RUN_NOT_FOUND" in missing.stderr
