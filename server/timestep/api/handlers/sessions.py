"""SessionService: a tenant's conversations, read and erased."""

from __future__ import annotations

import json
from typing import Protocol

from timestep_client.v1 import sessions_pb2

from timestep import ids
from timestep.api import convert
from timestep.api.handlers.context import CallContext
from timestep.domain import Page, Session, SessionItem
from timestep.runs.deletion import RunDeleter
from timestep.scope import Scope


class SessionReads(Protocol):
    """Where sessions are read (the store's `SessionStore`, given by the composition root)."""

    async def list_sessions(
        self, scope: Scope, agent: str, page_size: int, page_token: str
    ) -> Page[Session]: ...

    async def get_session(self, scope: Scope, session_id: str) -> Session: ...

    async def list_items(
        self, scope: Scope, session_id: str, page_size: int, page_token: str
    ) -> Page[SessionItem]: ...


def session_to_proto(session: Session) -> sessions_pb2.Session:
    return sessions_pb2.Session(
        id=session.id,
        item_count=session.item_count,
        run_count=session.run_count,
        agents=session.agents,
        create_time=convert.timestamp(session.create_time),
        last_activity_time=convert.timestamp(session.last_activity_time),
    )


def item_to_proto(item: SessionItem) -> sessions_pb2.SessionItem:
    return sessions_pb2.SessionItem(
        id=item.id,
        item_json=convert.proto_string(json.dumps(item.item, ensure_ascii=False), json_text=True),
        run_id=item.run_id,
        create_time=convert.timestamp(item.create_time),
    )


class SessionHandlers:
    def __init__(self, sessions: SessionReads, deleter: RunDeleter) -> None:
        self._sessions = sessions
        self._deleter = deleter

    async def ListSessions(
        self, request: sessions_pb2.ListSessionsRequest, call: CallContext
    ) -> sessions_pb2.ListSessionsResponse:
        page = await self._sessions.list_sessions(
            call.scope, request.agent, request.page_size, request.page_token
        )
        return sessions_pb2.ListSessionsResponse(
            sessions=[session_to_proto(s) for s in page.items], next_page_token=page.next_page_token
        )

    async def GetSession(
        self, request: sessions_pb2.GetSessionRequest, call: CallContext
    ) -> sessions_pb2.GetSessionResponse:
        session = await self._sessions.get_session(
            call.scope, ids.session_id(request.session_id, required=True)
        )
        return sessions_pb2.GetSessionResponse(session=session_to_proto(session))

    async def ListSessionItems(
        self, request: sessions_pb2.ListSessionItemsRequest, call: CallContext
    ) -> sessions_pb2.ListSessionItemsResponse:
        page = await self._sessions.list_items(
            call.scope,
            ids.session_id(request.session_id, required=True),
            request.page_size,
            request.page_token,
        )
        return sessions_pb2.ListSessionItemsResponse(
            items=[item_to_proto(i) for i in page.items], next_page_token=page.next_page_token
        )

    async def DeleteSession(
        self, request: sessions_pb2.DeleteSessionRequest, call: CallContext
    ) -> sessions_pb2.DeleteSessionResponse:
        deleted = await self._deleter.delete_session(
            call.scope,
            ids.session_id(request.session_id, required=True),
            delete_runs=request.delete_runs,
            force=request.force,
            allow_missing=request.allow_missing,
        )
        return sessions_pb2.DeleteSessionResponse(
            deleted_items=deleted.session_items, deleted_runs=deleted.runs
        )
