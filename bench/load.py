"""Concurrent clients running calls in a loop: their latencies, errors and the rate achieved."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed_s: float = 0.0

    @property
    def runs_per_s(self) -> float:
        return len(self.latencies) / self.elapsed_s


async def load(clients: int, per_client: int, call: Callable[[int], Awaitable[None]]) -> Load:
    """`clients` concurrent loops, each making `per_client` calls of `call(its index)`."""
    found = Load()

    async def worker(index: int) -> None:
        for _ in range(per_client):
            start = time.perf_counter()
            try:
                await call(index)
            except Exception as error:
                found.errors += 1
                print(f"  error: {error!r}"[:300], file=sys.stderr)
            else:
                found.latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker(index) for index in range(clients)))
    found.elapsed_s = time.perf_counter() - start
    return found
