"""The run error codes the service writes (`RunErrorCode`) are exactly those runs.proto and the
README document, so a client can rely on the list."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from timestep.domain import RunErrorCode

REPO = Path(__file__).resolve().parents[2]


def proto_codes() -> list[str]:
    """The codes listed in the comment of `RunError.code` in runs.proto."""
    proto = (REPO / "proto" / "timestep" / "v1" / "runs.proto").read_text()
    message = re.search(r"message RunError \{(.*?)\n\}", proto, re.DOTALL)
    assert message, "runs.proto lost its RunError message"
    comment = message.group(1).split("string code = 1;", 1)[0]
    return re.findall(r'^\s*//\s+"([a-z_]+)":', comment, re.MULTILINE)


def readme_codes() -> list[str]:
    """The codes in the rows of README.md's table of run error codes."""
    readme = (REPO / "README.md").read_text()
    table = readme.split("| `Run.error.code` | when |", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE)


def test_runs_proto_lists_every_run_error_code_once() -> None:
    codes = proto_codes()
    assert sorted(codes) == sorted(RunErrorCode)
    assert len(codes) == len(set(codes))


def test_readme_lists_every_run_error_code_once() -> None:
    codes = readme_codes()
    assert sorted(codes) == sorted(RunErrorCode)
    assert len(codes) == len(set(codes))


def test_the_service_writes_run_errors_only_with_codes_of_the_enum() -> None:
    """No `RunError("some_code", ...)` with a code of its own: every code comes from the enum
    (mypy holds ModelProviderError and StepReplayError to it; RunError.code is a plain str because
    runs read back may carry codes an older version wrote)."""
    literal_codes = []
    for path in (REPO / "server" / "timestep").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "RunError"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                literal_codes.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert literal_codes == []
