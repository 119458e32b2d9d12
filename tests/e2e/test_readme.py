"""The README's Python client quickstart runs as written against the real service."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from timestep.app import TimestepService

from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call

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
