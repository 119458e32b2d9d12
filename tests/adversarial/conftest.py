"""Fixtures of the adversarial tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

import grpc
import pytest
from timestep.app import TimestepService
from timestep_client import TimestepClient

# Separate connections: calls on them really arrive at once (and fewer streams share one).
CHANNELS: Final = 4


@pytest.fixture
async def clients(service: TimestepService) -> AsyncIterator[list[TimestepClient]]:
    # A channel of its own subchannel pool opens its own connection (gRPC shares them otherwise).
    options = [("grpc.use_local_subchannel_pool", 1)]
    connected = [
        TimestepClient(channel=grpc.aio.insecure_channel(f"127.0.0.1:{service.port}", options=options))
        for _ in range(CHANNELS)
    ]
    try:
        yield connected
    finally:
        await asyncio.gather(*(c.close() for c in connected))
