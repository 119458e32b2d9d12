"""The HTTP port: the RPCs over Connect as curl sends them (JSON POST), server streams, gRPC-Web,
API keys and tenants, CORS, limits, health, metrics, draining, and the console's page."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import pytest
from google.rpc import error_details_pb2
from timestep.app import TimestepService
from timestep.runtime.providers import ModelConfig
from timestep.settings import Limits
from timestep_client.v1 import agents_pb2

from tests.conftest import StartService
from timestep_testing import connect
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.helpers import EMAIL_ARGS, EMAIL_SENT, WAIT, tenant_keys

ACME_KEY: Final = "ts_acme-http-key-0123456789"
GLOBEX_KEY: Final = "ts_globex-http-key-0123456789"
APP_ORIGIN: Final = "http://app.example.test"
RUNS: Final = "/timestep.v1.RunService"


@pytest.fixture
async def service(start_service: StartService, model_config: ModelConfig) -> AsyncIterator[TimestepService]:
    keys = tenant_keys(ACME_KEY, GLOBEX_KEY)
    async with start_service(model_config, api_keys=keys, cors_origins=(APP_ORIGIN,)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session:
        yield session


def base_url(service: TimestepService) -> str:
    return f"http://127.0.0.1:{service.http_port}"


async def post(
    http: aiohttp.ClientSession, service: TimestepService, rpc: str, body: dict[str, Any], key: str = ACME_KEY
) -> connect.ConnectResult:
    return await connect.call(http, base_url(service), f"{RUNS}/{rpc}", body, api_key=key)


async def test_curl_creates_approves_resumes_and_follows_a_run(
    service: TimestepService, http: aiohttp.ClientSession, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(tool_call("send_email", EMAIL_ARGS), text("Done: Bob knows."))
    created = await post(
        http, service, "CreateRun", {"agent": "assistant", "input": "Tell Bob", "wait": True}
    )
    assert created.code == "ok", created
    run = created.messages[0]["run"]
    assert run["status"] == "RUN_STATUS_INTERRUPTED"
    [interruption] = run["interruptions"]
    assert interruption["toolName"] == "send_email"

    approved = await post(
        http, service, "ApproveInterruption", {"runId": run["id"], "interruptionId": interruption["id"]}
    )
    assert approved.messages[0]["interruption"]["status"] == "INTERRUPTION_STATUS_APPROVED"
    resumed = await post(http, service, "ResumeRun", {"runId": run["id"], "wait": True})
    assert resumed.messages[0]["run"]["status"] == "RUN_STATUS_COMPLETED"
    assert resumed.messages[0]["run"]["finalOutput"] == "Done: Bob knows."

    events = await connect.call(
        http,
        base_url(service),
        f"{RUNS}/StreamRunEvents",
        {"runId": run["id"]},
        api_key=ACME_KEY,
        streaming=True,
    )
    assert events.error is None, events
    kinds = [
        next(k for k in message["event"] if k not in ("sequence", "time", "runId", "segment"))
        for message in events.messages
    ]
    assert kinds.count("interruption") == 1
    assert kinds[-1] == "statusChanged"
    assert events.messages[-1]["event"]["statusChanged"]["status"] == "RUN_STATUS_COMPLETED"
    sequences = [int(m["event"]["sequence"]) for m in events.messages]
    assert sequences == list(range(1, len(sequences) + 1))
    outputs = [m["event"]["toolOutput"]["output"] for m in events.messages if "toolOutput" in m["event"]]
    assert outputs == [EMAIL_SENT]


async def test_tokens_stream_over_connect_as_the_model_speaks(
    service: TimestepService, http: aiohttp.ClientSession, fake_openai: FakeOpenAI
) -> None:
    rest = asyncio.Event()
    fake_openai.script(text("Streaming over HTTP works.", pause_after_first_delta=rest))
    created = await post(http, service, "CreateRun", {"agent": "assistant", "input": "Say it"})
    run_id = created.messages[0]["run"]["id"]
    deltas = []
    async for message in connect.stream(
        http, base_url(service), f"{RUNS}/StreamRunEvents", {"runId": run_id}, api_key=ACME_KEY
    ):
        if "textDelta" in message["event"]:
            deltas.append(message["event"]["textDelta"]["delta"])
            rest.set()  # the first delta arrived while the model was still speaking
    assert deltas[0] == "Streaming"
    assert "".join(deltas) == "Streaming over HTTP works."


async def test_without_a_valid_key_every_rpc_is_unauthenticated(
    service: TimestepService, http: aiohttp.ClientSession
) -> None:
    for key in ("", "ts_not-a-key"):
        refused = await post(http, service, "ListRuns", {}, key=key)
        assert refused.status == 401
        assert refused.code == "unauthenticated"
        assert "API key" in refused.error["message"]  # type: ignore[index]


async def test_another_tenants_run_is_not_found_over_http(
    service: TimestepService, http: aiohttp.ClientSession, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(text("Hello."))
    created = await post(http, service, "CreateRun", {"agent": "assistant", "input": "Hi", "wait": True})
    run_id = created.messages[0]["run"]["id"]
    assert (await post(http, service, "GetRun", {"runId": run_id})).code == "ok"
    other = await post(http, service, "GetRun", {"runId": run_id}, key=GLOBEX_KEY)
    assert other.status == 404
    assert other.code == "not_found"
    [(kind, value)] = other.details()
    assert kind == "google.rpc.ErrorInfo"
    assert error_details_pb2.ErrorInfo.FromString(value).reason == "RUN_NOT_FOUND"
    listed = await post(http, service, "ListRuns", {}, key=GLOBEX_KEY)
    assert run_id not in {run["id"] for run in listed.messages[0].get("runs", [])}


async def test_grpc_web_calls_are_served(service: TimestepService, http: aiohttp.ClientSession) -> None:
    request = agents_pb2.ListAgentsRequest().SerializeToString()
    headers = {"content-type": "application/grpc-web+proto", "authorization": f"Bearer {ACME_KEY}"}
    async with http.post(
        f"{base_url(service)}/timestep.v1.AgentService/ListAgents",
        data=struct.pack(">BI", 0, len(request)) + request,
        headers=headers,
    ) as response:
        body = await response.read()
    assert response.status == 200
    flags, size = struct.unpack(">BI", body[:5])
    assert flags == 0
    agents = agents_pb2.ListAgentsResponse.FromString(body[5 : 5 + size])
    assert {agent.name for agent in agents.agents} == {"assistant", "billing"}
    assert body[5 + size :] == b"\x80\x00\x00\x00\x10grpc-status: 0\r\n", "trailers: the call ended OK"


async def test_cors_allows_only_the_configured_origins(
    service: TimestepService, http: aiohttp.ClientSession
) -> None:
    async def preflight(origin: str) -> aiohttp.ClientResponse:
        headers = {
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type,connect-protocol-version",
        }
        async with http.options(f"{base_url(service)}{RUNS}/ListRuns", headers=headers) as response:
            return response

    allowed = await preflight(APP_ORIGIN)
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    refused = await preflight("http://evil.example.test")
    assert "access-control-allow-origin" not in refused.headers


async def test_without_cors_origins_no_cross_origin_call_is_allowed(
    start_service: StartService, model_config: ModelConfig, http: aiohttp.ClientSession
) -> None:
    async with start_service(model_config) as service:
        headers = {"origin": APP_ORIGIN, "content-type": "application/json"}
        async with http.post(f"{base_url(service)}{RUNS}/ListRuns", data=b"{}", headers=headers) as response:
            assert response.status == 200  # the service answers; the browser withholds it from the page
            assert "access-control-allow-origin" not in response.headers


async def test_a_request_over_the_message_limit_is_refused(
    start_service: StartService, model_config: ModelConfig, http: aiohttp.ClientSession
) -> None:
    async with start_service(model_config, limits=Limits(max_message_bytes=64 * 1024)) as service:
        body = {"agent": "assistant", "input": "x" * (128 * 1024)}
        refused = await connect.call(http, base_url(service), f"{RUNS}/CreateRun", body)
        assert refused.code == "resource_exhausted", refused


async def test_health_metrics_and_the_console_share_the_port(
    service: TimestepService, http: aiohttp.ClientSession
) -> None:
    health = await connect.call(http, base_url(service), "/grpc.health.v1.Health/Check", {})
    assert health.messages == [{"status": "SERVING"}]
    await post(http, service, "ListRuns", {})
    counted = service.metrics.registry.get_sample_value(
        "timestep_rpc_requests_total", {"method": "timestep.v1.RunService/ListRuns", "code": "OK"}
    )
    assert counted is not None
    assert counted >= 1

    async with http.get(base_url(service) + "/") as page:
        html = await page.text()
        policy = page.headers["content-security-policy"]
    assert page.status == 200
    assert "<title>Timestep</title>" in html
    assert "default-src 'self'" in policy
    assert "http://" not in html.replace(APP_ORIGIN, "")
    assert "https://" not in html


async def test_open_streams_end_unavailable_when_the_service_drains(
    service: TimestepService, http: aiohttp.ClientSession
) -> None:
    stream = connect.stream(http, base_url(service), f"{RUNS}/WatchRuns", {}, api_key=ACME_KEY)
    bookmark = await anext(stream)
    assert bookmark["cursor"]
    await service.drain()
    with pytest.raises(connect.ConnectStreamError) as ended:
        await asyncio.wait_for(anext(stream), WAIT)
    assert ended.value.error["code"] == "unavailable"
    assert "reconnect" in ended.value.error["message"]
    refused = await post(http, service, "ListRuns", {})
    assert refused.code == "unavailable"
