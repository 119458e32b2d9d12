"""PostgresSession: the Agents SDK `Session` protocol on the service's `session_items` table."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import asyncpg
from agents import SessionSettings, TResponseInputItem

from timestep.store.content import escape_texts
from timestep.store.database import shared_pool
from timestep.store.retry import retrying


class PostgresSession:
    """Conversation history for one `session_id`, shared by every run that names it.

    Pass a pool to share the service's connections; without one, the database is found the
    way the service finds it (PG_CONNECTION_URI, localhost:5432, or embedded).
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        pool: asyncpg.Pool | None = None,
        *,
        replay_key: str = "",
        run_id: str = "",
        segment: int = 0,
    ) -> None:
        self.session_id = session_id
        self._pool = pool
        # The run segment storing items, if any: each item names its run, and a segment whose
        # run is no longer RUNNING it (cancelled, maybe with its items rolled back) stores none.
        self._run_id = run_id
        self._segment = segment
        # With a replay key (a run segment's identity), the session is rewound on first use to
        # where it was before the segment: the items an earlier, interrupted attempt of the
        # segment stored (keyed "<replay key>:<n-th add_items call>:<index>") are removed, so a
        # replay reads the history the first attempt read and stores its items again itself.
        # The keys also keep the n-th add_items call from storing its items twice.
        self._replay_key = replay_key
        self._adds = 0
        self._ready = False
        self._ready_lock = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        if not self._ready:
            async with self._ready_lock:
                if not self._ready:
                    if self._pool is None:
                        self._pool = await shared_pool()
                    if self._replay_key:
                        pool = self._pool
                        await retrying(
                            lambda: pool.execute(
                                "DELETE FROM session_items "
                                "WHERE session_id = $1 AND starts_with(dedupe_key, $2)",
                                self.session_id,
                                f"{self._replay_key}:",
                            ),
                            what="rewind session",
                            pool=pool,
                        )
                    self._ready = True
        assert self._pool is not None
        return self._pool

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        pool = await self._get_pool()
        if limit is None:
            query = "SELECT item FROM session_items WHERE session_id = $1 ORDER BY id"
            args: tuple[Any, ...] = (self.session_id,)
        else:
            query = """SELECT item FROM (SELECT id, item FROM session_items WHERE session_id = $1
                                         ORDER BY id DESC LIMIT $2) latest ORDER BY id"""
            args = (self.session_id, limit)
        rows = await retrying(lambda: pool.fetch(query, *args), what="read session items", pool=pool)
        return [row["item"] for row in rows]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        if not items:
            return
        pool = await self._get_pool()
        # Items may be pydantic models or TypedDicts; store their JSON form (raw, not \u-escaped:
        # a JSON round trip would join two lone surrogates into one character).
        as_json: list[Any] = [
            json.loads(json.dumps(item, default=_model_dump, ensure_ascii=False)) for item in items
        ]
        self._adds += 1
        keys = [
            f"{self._replay_key}:{self._adds}:{i}" if self._replay_key else None for i in range(len(items))
        ]
        # Without a replay key a repeated INSERT could store the items twice: not retried.
        # The run's row is read FOR SHARE: a cancellation (which locks it for update) commits
        # either before this insert, which then stores nothing, or after it, seeing its items.
        insert = functools.partial(
            pool.execute,
            """WITH owner AS (
                   SELECT 1 FROM runs WHERE $4 <> '' AND id = $4 AND status = 'running' AND segment_count = $5
                   FOR SHARE)
               INSERT INTO session_items (session_id, item, dedupe_key, run_id)
               SELECT $1, item, key, NULLIF($4, '')
               FROM unnest($2::jsonb[], $3::text[]) WITH ORDINALITY AS t(item, key, ord)
               WHERE $4 = '' OR EXISTS (SELECT 1 FROM owner)
               ORDER BY ord
               ON CONFLICT (session_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING""",
            self.session_id,
            as_json,
            escape_texts(keys),
            self._run_id,
            self._segment,
        )
        if self._replay_key:
            await retrying(insert, what="store session items", pool=pool)
        else:
            await insert()

    async def pop_item(self) -> TResponseInputItem | None:
        pool = await self._get_pool()
        row = await pool.fetchrow(
            """DELETE FROM session_items WHERE id = (
                   SELECT id FROM session_items WHERE session_id = $1 ORDER BY id DESC LIMIT 1)
               RETURNING item""",
            self.session_id,
        )
        return row["item"] if row else None

    async def clear_session(self) -> None:
        pool = await self._get_pool()
        await pool.execute("DELETE FROM session_items WHERE session_id = $1", self.session_id)


def _model_dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if dump is None:
        raise TypeError(f"cannot store {type(value).__name__} in a session")
    return dump(exclude_unset=True)
