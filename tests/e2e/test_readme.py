"""The README's Python client quickstart and curl example run as written against the real service."""

from __future__ import annotations

import asyncio
import json
import os
import re
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest
from timestep.app import TimestepService

from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.helpers import WAIT

README = Path(__file__).resolve().parents[2] / "README.md"


def python_quickstart() -> str:
    section = README.read_text().split("## Quickstart with the Python client", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README lost its Python client quickstart"
    return match.group(1)


async def test_readme_python_quickstart_approves_and_prints_the_final_output(
    service: TimestepService, fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.script(
        tool_call("send_email", {"to": "bob@example.com", "subject": "Late", "body": "I am late"}),
        text("I emailed Bob that you are late."),
    )
    source = python_quickstart().replace("localhost:50051", f"127.0.0.1:{service.port}")
    source = source.replace("asyncio.run(main())", "")
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), namespace)
    await namespace["main"]()
    printed = capsys.readouterr().out
    assert "approving send_email(" in printed
    assert printed.rstrip().endswith("I emailed Bob that you are late.")


def curl_commands() -> list[str]:
    """The commands of the README's curl example, continuation lines joined, without comments
    and the line that stands for copying ids from an answer."""
    section = README.read_text().split("## HTTP and browsers", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "the README lost its curl example"
    commands, current = [], ""
    for line in match.group(1).splitlines():
        if line.startswith("#") or line.startswith("RUN="):
            continue
        current += line.rstrip("\\")
        if not line.endswith(("\\", "|")):
            commands.append(current)
            current = ""
    return commands


async def test_readme_curl_example_creates_approves_resumes_and_follows_a_run(
    service: TimestepService, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(
        tool_call("send_email", {"to": "bob@example.com", "subject": "Late", "body": "I am late"}),
        text("I emailed Bob that you are late."),
    )
    [set_url, create, approve, resume, set_body, follow] = curl_commands()
    url = set_url.replace("http://localhost:8080", f"http://127.0.0.1:{service.http_port}")
    created = json.loads(await bash(f"{url}; {create}", {}))
    run = created["run"]
    assert run["status"] == "RUN_STATUS_INTERRUPTED"
    ids = {"RUN": run["id"], "INT": run["interruptions"][0]["id"]}
    approved = json.loads(await bash(f"{url}; {approve}", ids))
    assert approved["interruption"]["status"] == "INTERRUPTION_STATUS_APPROVED"
    resumed = json.loads(await bash(f"{url}; {resume}", ids))
    assert resumed["run"]["finalOutput"] == "I emailed Bob that you are late."
    streamed = await bash(f"{url}; {set_body}; {follow}", ids)
    assert '"output": "I emailed Bob that you are late."' in streamed
    assert '"status": "RUN_STATUS_COMPLETED"' in streamed


async def bash(script: str, variables: dict[str, str]) -> str:
    """What `script` prints (the bytes framing a Connect stream's messages shown as U+FFFD)."""
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", script, env={**os.environ, **variables}, stdout=PIPE, stderr=PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), WAIT)
    assert process.returncode == 0, stderr.decode(errors="replace")
    return stdout.decode(errors="replace")
