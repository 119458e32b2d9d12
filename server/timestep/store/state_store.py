"""RunStateStore: save and load one agent's paused RunState per session (the Python library API)."""

from __future__ import annotations

from typing import Any

import asyncpg
from agents import Agent, RunState

from timestep.runtime.state_sdk import export_state, load_state
from timestep.store.database import shared_pool


class RunStateStore:
    """Keeps the latest RunState of `agent` in `session_id`, in the service's database.

    The JSON is stored exactly as the SDK wrote it, with its writer and schema version.
    """

    def __init__(self, agent: Agent[Any], session_id: str, *, pool: asyncpg.Pool | None = None) -> None:
        self.agent = agent
        self.session_id = session_id
        self._pool = pool

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await shared_pool()
        return self._pool

    async def save(self, state: RunState[Any, Any]) -> None:
        snapshot = export_state(state).snapshot()
        pool = await self._get_pool()
        await pool.execute(
            """INSERT INTO saved_run_states (agent, session_id, writer, schema_version, state_json)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (agent, session_id) DO UPDATE
               SET writer = EXCLUDED.writer, schema_version = EXCLUDED.schema_version,
                   state_json = EXCLUDED.state_json, update_time = clock_timestamp()""",
            self.agent.name,
            self.session_id,
            snapshot.writer,
            snapshot.schema_version,
            snapshot.state_json,
        )

    async def load(self) -> RunState[Any, Any] | None:
        """The saved state, or None when nothing is saved for this agent and session."""
        pool = await self._get_pool()
        state_json = await pool.fetchval(
            "SELECT state_json FROM saved_run_states WHERE agent = $1 AND session_id = $2",
            self.agent.name,
            self.session_id,
        )
        if state_json is None:
            return None
        return await load_state(self.agent, state_json)

    async def clear(self) -> None:
        pool = await self._get_pool()
        await pool.execute(
            "DELETE FROM saved_run_states WHERE agent = $1 AND session_id = $2",
            self.agent.name,
            self.session_id,
        )
