"""Sessions as the service lists them: per tenant, from the runs that named a session id and the
items stored under the tenant's key for it (`ids.scoped`). Items are written by
`PostgresSession`; this module reads them and deletes them (with any RunState a library program
saved under the same key)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import asyncpg

from timestep import ids
from timestep.domain import Page, Session, SessionItem
from timestep.errors import NotFoundError
from timestep.scope import Scope
from timestep.store.pages import clamp_page_size, decode_page_token, encode_page_token
from timestep.store.retry import retried
from timestep.store.rows import Connection

# Each session of one tenant, from its runs (`r`) and its items (`i`); `$1` is the tenant and
# `$2` the key prefix of its items (`ids.tenant_prefix`).
_SESSIONS = """
    WITH r AS (
        SELECT session_id AS id, count(*) AS run_count, array_agg(DISTINCT agent) AS agents,
               min(create_time) AS first_time, max(update_time) AS last_time
        FROM runs WHERE tenant = $1 AND session_id <> '' {run_filter}
        GROUP BY session_id),
    i AS (
        SELECT substr(session_id, length($2) + 1) AS id, count(*) AS item_count,
               min(create_time) AS first_time, max(create_time) AS last_time
        FROM session_items WHERE starts_with(session_id, $2) {item_filter}
        GROUP BY session_id),
    s AS (
        SELECT coalesce(r.id, i.id) AS id,
               coalesce(i.item_count, 0) AS item_count,
               coalesce(r.run_count, 0) AS run_count,
               coalesce(r.agents, '{{}}') AS agents,
               least(r.first_time, i.first_time) AS create_time,
               greatest(r.last_time, i.last_time) AS last_activity_time
        FROM r FULL JOIN i ON i.id = r.id)
    SELECT * FROM s"""


def _session_from_row(row: asyncpg.Record) -> Session:
    return Session(
        id=row["id"],
        item_count=row["item_count"],
        run_count=row["run_count"],
        agents=sorted(row["agents"]),
        create_time=row["create_time"],
        last_activity_time=row["last_activity_time"],
    )


def session_not_found(session_id: str) -> NotFoundError:
    return NotFoundError(
        f"No session has id {session_id!r}. List sessions with SessionService.ListSessions.",
        reason="SESSION_NOT_FOUND",
    )


def _tenant_of(scope: Scope) -> str:
    if scope.only is None:
        raise ValueError("sessions are read for one tenant at a time")
    return scope.only


class SessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @retried
    async def list_sessions(self, scope: Scope, agent: str, page_size: int, page_token: str) -> Page[Session]:
        """The tenant's sessions (with a run of `agent`, if given), newest activity first."""
        tenant = _tenant_of(scope)
        size = clamp_page_size(page_size)
        token_scope = hashlib.sha256(repr(("sessions", tenant, agent)).encode()).hexdigest()[:16]
        after = decode_page_token(
            page_token, token_scope, lambda a: (datetime.fromisoformat(a[0]).astimezone(UTC), a[1])
        )
        args: list[Any] = [tenant, ids.tenant_prefix(tenant)]
        query = _SESSIONS.format(run_filter="", item_filter="")
        conditions = []
        if agent:
            args.append(agent)
            conditions.append(f"${len(args)} = ANY(agents)")
        if after:
            args.extend(after)
            conditions.append(f"(last_activity_time, id) < (${len(args) - 1}, ${len(args)})")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        args.append(size + 1)
        rows = await self._pool.fetch(
            f"{query}{where} ORDER BY last_activity_time DESC, id DESC LIMIT ${len(args)}", *args
        )
        sessions = [_session_from_row(row) for row in rows[:size]]
        token = ""
        if len(rows) > size:
            last = sessions[-1]
            token = encode_page_token(token_scope, [last.last_activity_time.isoformat(), last.id])
        return Page(sessions, token)

    @retried
    async def get_session(self, scope: Scope, session_id: str) -> Session:
        async with self._pool.acquire() as connection:
            session = await self.find_session(connection, scope, session_id)
        if session is None:
            raise session_not_found(session_id)
        return session

    async def find_session(self, connection: Connection, scope: Scope, session_id: str) -> Session | None:
        tenant = _tenant_of(scope)
        row = await connection.fetchrow(
            _SESSIONS.format(run_filter="AND session_id = $3", item_filter="AND session_id = $2 || $3"),
            tenant,
            ids.tenant_prefix(tenant),
            session_id,
        )
        return None if row is None else _session_from_row(row)

    @retried
    async def list_items(
        self, scope: Scope, session_id: str, page_size: int, page_token: str
    ) -> Page[SessionItem]:
        """The session's items, oldest first, with the run that added each."""
        size = clamp_page_size(page_size)
        key = ids.scoped(_tenant_of(scope), session_id)
        token_scope = hashlib.sha256(repr(("session-items", key)).encode()).hexdigest()[:16]
        after = decode_page_token(page_token, token_scope, lambda a: int(a[0]))
        async with self._pool.acquire() as connection:
            if after is None and await self.find_session(connection, scope, session_id) is None:
                raise session_not_found(session_id)
            rows = await connection.fetch(
                """SELECT id, item, run_id, create_time FROM session_items
                   WHERE session_id = $1 AND id > $2 ORDER BY id LIMIT $3""",
                key,
                after or 0,
                size + 1,
            )
        items = [
            SessionItem(row["id"], row["item"], row["run_id"] or "", row["create_time"])
            for row in rows[:size]
        ]
        token = encode_page_token(token_scope, [str(items[-1].id)]) if len(rows) > size else ""
        return Page(items, token)

    async def delete_history(self, connection: Connection, scope: Scope, session_id: str) -> int:
        """Delete the session's items, and the RunStates library programs saved under its key
        (`RunStateStore`), in the caller's transaction; how many items there were."""
        key = ids.scoped(_tenant_of(scope), session_id)
        await connection.execute("DELETE FROM saved_run_states WHERE session_id = $1", key)
        deleted = await connection.fetchval(
            "WITH d AS (DELETE FROM session_items WHERE session_id = $1 RETURNING 1) SELECT count(*) FROM d",
            key,
        )
        return int(deleted)
