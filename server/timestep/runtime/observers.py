"""A hook for watching model calls (latency, tokens) without the runtime knowing who watches.

`timestep.observability.metrics` registers an observer; each model call that actually reaches a
provider (not one replayed from a durable record) is reported once when it ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelCallReport:
    model: str
    seconds: float
    ok: bool
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class ModelCallObserver(Protocol):
    def __call__(self, report: ModelCallReport) -> None: ...


model_call_observers: list[ModelCallObserver] = []

T = TypeVar("T")


def _tokens(response: Any) -> dict[str, int]:
    """Token counts of a `ModelResponse` (Agents SDK) or a `Response` (OpenAI Responses API)."""
    usage = getattr(response, "usage", None)
    if usage is None:
        return {}
    input_details = getattr(usage, "input_tokens_details", None)
    output_details = getattr(usage, "output_tokens_details", None)
    return {
        "input_tokens": int(getattr(usage, "input_tokens", 0) or 0),
        "output_tokens": int(getattr(usage, "output_tokens", 0) or 0),
        "cached_tokens": int(getattr(input_details, "cached_tokens", 0) or 0),
        "reasoning_tokens": int(getattr(output_details, "reasoning_tokens", 0) or 0),
    }


def observed(model: str, call: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """`call`, reporting its duration and tokens to the observers when it ends."""

    async def timed() -> T:
        if not model_call_observers:
            return await call()
        start = time.perf_counter()
        ok = False
        result: Any = None
        try:
            result = await call()
            ok = True
            return result  # type: ignore[no-any-return]
        finally:
            tokens = _tokens(result) if ok else {}
            report = ModelCallReport(model, time.perf_counter() - start, ok, **tokens)
            for observer in list(model_call_observers):
                try:
                    observer(report)
                except Exception:  # an observer must never break a run
                    log.exception("model call observer failed")

    return timed
