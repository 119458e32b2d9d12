"""The TypeScript client package (clients/typescript) runs its own tests under Node against the
real service: over gRPC and over Connect on the HTTP port, with an API key. The fake model
answers each run with a send_email call and, after the decision, a text; in the conversation
test, the session's first run with a text and its second with a send_email call. Webhook
deliveries go to a receiver here, which checks how they were signed."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Final

import pytest
from timestep.app import TimestepService
from timestep.runtime.providers import ModelConfig
from timestep.settings import WebhookSettings

from tests.conftest import StartService
from timestep_testing.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_testing.fakes.webhook_receiver import WebhookReceiver
from timestep_testing.harness import run_to_completion
from timestep_testing.helpers import EMAIL_ARGS, tenant_keys, unique
from timestep_testing.typescript import CLIENT_PACKAGE, build_client

NODE_TIMEOUT: Final = 120.0
"""Upper bound for the tests (never a sleep)."""
API_KEY: Final = "ts_typescript-client-key-0123456789"
# What the model answers after the decision, in the order each transport's tests decide.
AFTER_DECISION: Final = ("The email was sent.", "OK, I did not send it.")
CONVERSATION_ANSWER: Final = "Hello Ada."
# And after the edited approval and the rejection decided with resume, which follow.
AFTER_RESUMING_DECISION: Final = ("The email was sent to Carol.", "OK, not now.")


@pytest.fixture(scope="module")
def built_package() -> None:
    build_client()


@pytest.fixture
async def service(
    start_service: StartService, model_config: ModelConfig, durable_database: str
) -> AsyncIterator[TimestepService]:
    # A database of its own: its webhooks (on loopback) hear only this test's runs.
    async with start_service(
        model_config,
        database_url=durable_database,
        api_keys=tenant_keys(API_KEY),
        webhooks=WebhookSettings(allow_private=True, dispatch_interval_s=0.05),
    ) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running


@pytest.mark.usefixtures("built_package")
async def test_the_typescript_client_passes_its_tests_against_the_service(
    service: TimestepService, fake_openai: FakeOpenAI, receiver: WebhookReceiver
) -> None:
    transports = 2  # gRPC and Connect
    for _ in range(transports):
        for answer in AFTER_DECISION:
            fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id=unique("call")), text(answer))
        fake_openai.script(
            text(CONVERSATION_ANSWER), tool_call("send_email", EMAIL_ARGS, call_id=unique("call"))
        )
        for answer in AFTER_RESUMING_DECISION:
            fake_openai.script(tool_call("send_email", EMAIL_ARGS, call_id=unique("call")), text(answer))
    environment = {
        **os.environ,
        "TIMESTEP_GRPC_URL": f"http://127.0.0.1:{service.port}",
        "TIMESTEP_HTTP_URL": f"http://127.0.0.1:{service.http_port}",
        "TIMESTEP_API_KEY": API_KEY,
        "TIMESTEP_WEBHOOK_URL": receiver.url,
    }
    code, stdout, stderr = await run_to_completion(
        "npm", "test", "--silent", limit_s=NODE_TIMEOUT, cwd=CLIENT_PACKAGE, env=environment
    )
    assert code == 0, f"the TypeScript client's tests failed:\n{stdout}\n{stderr}"
    assert "# fail 0" in stdout
    assert fake_openai.remaining == 0, "every test ran and made the model calls it was scripted for"
    # Each transport's webhook got a test event before its rotation (one signature) and one
    # during the rotation's overlap (signed with the new secret and the old one).
    signatures: dict[str, list[int]] = {}
    for received in receiver.received:
        assert received.type == "webhook.test"
        count = len(received.headers["webhook-signature"].split(" "))
        signatures.setdefault(received.json["data"]["webhook_id"], []).append(count)
    assert list(signatures.values()) == [[1, 2]] * transports


@pytest.mark.usefixtures("built_package")
async def test_the_package_packs_with_its_built_modules_and_types() -> None:
    code, stdout, stderr = await run_to_completion(
        "npm", "pack", "--dry-run", "--json", "--ignore-scripts", limit_s=NODE_TIMEOUT, cwd=CLIENT_PACKAGE
    )
    assert code == 0, stderr
    [packed] = json.loads(stdout)
    files = {entry["path"] for entry in packed["files"]}
    assert packed["name"] == "@timestep/client"
    assert {
        "package.json",
        "dist/src/index.js",
        "dist/src/index.d.ts",
        "dist/src/web.js",
        "dist/src/node.js",
    } <= files
    assert not any(path.startswith(("test/", "dist/test/", "src/")) for path in files)
