"""Waiting out the database: which errors are transient, and retrying through them.

A database restart, a failover or a dropped connection must not end a run: the durable paths
(step journal, events, segment start and finish, preemption checks, session items) retry an
operation that failed for such a reason, with exponential backoff and jitter, for a long but
bounded time (`PATIENCE_S`), logging a WARNING while they wait. Every operation retried this
way is idempotent (see the callers): a write that committed but whose reply was lost is
repeated without effect.

After a transient failure the pool's connections are expired (asyncpg's public
`Pool.expire_connections`): a database restart breaks all of them at once, and a broken
connection must not be handed out again (it fails with "another operation is in progress").
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, Final, ParamSpec, Protocol, TypeVar

import asyncpg

from timestep.errors import DatabaseUnavailableError
from timestep.outages import is_transient

log = logging.getLogger(__name__)

# How long a durable operation waits for the database before giving up.
PATIENCE_S: Final = 300.0
FIRST_DELAY_S: Final = 0.05
MAX_DELAY_S: Final = 2.0

T = TypeVar("T")
P = ParamSpec("P")


def database_unavailable(error: BaseException | None) -> bool:
    """Whether a segment's `error` came from the database being away (a durable operation
    that ran out of patience, possibly wrapped by the Agents SDK, or a bare transient error),
    as opposed to a failure of the run itself."""
    if error is not None and is_transient(error):
        return True
    while error is not None:
        if isinstance(error, DatabaseUnavailableError):
            return True
        error = error.__cause__
    return False


def backoff_delays(first_s: float = FIRST_DELAY_S, max_s: float = MAX_DELAY_S) -> Callable[[], float]:
    """Successive delays: exponential up to `max_s`, each with full jitter (so replicas that
    lost the database together do not come back in lockstep)."""
    ceiling = first_s

    def next_delay() -> float:
        nonlocal ceiling
        delay = random.uniform(ceiling / 2, ceiling)
        ceiling = min(ceiling * 2, max_s)
        return delay

    return next_delay


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    pool: asyncpg.Pool | None = None,
    patience_s: float = PATIENCE_S,
) -> T:
    """`operation()`, repeated while it fails with transient errors, for up to `patience_s`;
    then DatabaseUnavailableError is raised from the last error. `pool`'s connections are
    expired after each failure."""
    deadline = time.monotonic() + patience_s
    next_delay = backoff_delays()
    failures = 0
    while True:
        try:
            return await operation()
        except Exception as error:
            if not is_transient(error):
                raise
            if pool is not None:
                await pool.expire_connections()
            failures += 1
            delay = next_delay()
            if time.monotonic() + delay > deadline:
                raise DatabaseUnavailableError(
                    f"{what}: the database stayed unreachable for {patience_s:.0f}s ({error})"
                ) from error
            # The first failure and then every tenth: one line per few seconds of outage.
            if failures % 10 == 1:
                log.warning("%s: database unavailable (%s: %s); retrying", what, type(error).__name__, error)
        await asyncio.sleep(delay)  # backoff while the database is away


class UsesPool(Protocol):
    _pool: asyncpg.Pool


S = TypeVar("S", bound=UsesPool)


def retried(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """A store method that waits out the database (`retrying`); only for idempotent methods."""

    @functools.wraps(method)
    async def wrapper(store: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await retrying(lambda: method(store, *args, **kwargs), what=method.__name__, pool=store._pool)

    return wrapper
