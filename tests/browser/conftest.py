"""The browser tests' service (two tenants' API keys) and a fresh browser looking at its console."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final

import pytest
from timestep.app import TimestepService
from timestep.runtime.providers import ModelConfig

from tests.browser.console_page import ConsolePage, browser_missing
from tests.conftest import StartService
from timestep_testing.helpers import tenant_keys

ACME_KEY: Final = "ts_acme-console-key-0123456789"
GLOBEX_KEY: Final = "ts_globex-console-key-0123456789"


@pytest.fixture
async def service(
    request: pytest.FixtureRequest, start_service: StartService, model_config: ModelConfig
) -> AsyncIterator[TimestepService]:
    """The service; a test changes its configuration with indirect parametrization (a dict of
    ServiceConfig fields)."""
    config: dict[str, Any] = getattr(request, "param", {})
    async with start_service(model_config, api_keys=tenant_keys(ACME_KEY, GLOBEX_KEY), **config) as running:
        yield running


@pytest.fixture
async def page(service: TimestepService) -> AsyncIterator[ConsolePage]:
    if reason := browser_missing():
        pytest.fail(reason)
    opened = await asyncio.to_thread(ConsolePage, f"http://127.0.0.1:{service.http_port}")
    try:
        yield opened
    finally:
        await asyncio.to_thread(opened.close)
