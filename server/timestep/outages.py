"""Which database errors mean the database is away (restarting, failing over, unreachable)
rather than that the operation is wrong: the store waits these out, the API answers them with
UNAVAILABLE."""

from __future__ import annotations

from typing import Final

import asyncpg

# SQLSTATEs worth retrying: connection exceptions (class 08), operator intervention (shutdown,
# crash shutdown, cannot connect now), serialization failure, deadlock, too many connections.
_TRANSIENT_SQLSTATES: Final = frozenset({"57P01", "57P02", "57P03", "40001", "40P01", "53300"})


def is_transient(error: BaseException) -> bool:
    """Whether a database call's `error` says the database is unreachable or asked for a retry
    (rather than that the operation is wrong)."""
    if isinstance(error, asyncpg.PostgresError):
        state = getattr(error, "sqlstate", None) or ""
        return state.startswith("08") or state in _TRANSIENT_SQLSTATES
    if isinstance(error, asyncpg.InterfaceError):
        # DataError and ClientConfigurationError are the caller's mistakes; the others are a
        # connection in a bad state ("another operation is in progress", "connection is closed").
        return not isinstance(error, asyncpg.DataError | asyncpg.ClientConfigurationError)
    # InternalClientError: a protocol in an impossible state, i.e. a connection broken mid-query.
    # OSError: refused, reset, unreachable, and timeouts connecting (TimeoutError is an OSError).
    return isinstance(error, asyncpg.InternalClientError | OSError)
