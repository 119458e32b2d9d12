"""SessionService: a tenant's conversations, read and erased."""

from __future__ import annotations

import json

from grpc.aio import ServicerContext as Context
from timestep_client.v1 import sessions_pb2, sessions_pb2_grpc

from timestep import ids
from timestep.api import convert
from timestep.api.auth import current_scope
from timestep.api.errors import unary
from timestep.domain import Session, SessionItem
from timestep.runs.deletion import RunDeleter
from timestep.settings import Limits
from timestep.store.session_store import SessionStore


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


class SessionService(sessions_pb2_grpc.SessionServiceServicer):  # type: ignore[misc]
    def __init__(self, sessions: SessionStore, deleter: RunDeleter, limits: Limits) -> None:
        self._sessions = sessions
        self._deleter = deleter
        self.limits = limits

    @unary
    async def ListSessions(
        self, request: sessions_pb2.ListSessionsRequest, context: Context
    ) -> sessions_pb2.ListSessionsResponse:
        page = await self._sessions.list_sessions(
            current_scope(), request.agent, request.page_size, request.page_token
        )
        return sessions_pb2.ListSessionsResponse(
            sessions=[session_to_proto(s) for s in page.items], next_page_token=page.next_page_token
        )

    @unary
    async def GetSession(
        self, request: sessions_pb2.GetSessionRequest, context: Context
    ) -> sessions_pb2.GetSessionResponse:
        session = await self._sessions.get_session(
            current_scope(), ids.session_id(request.session_id, required=True)
        )
        return sessions_pb2.GetSessionResponse(session=session_to_proto(session))

    @unary
    async def ListSessionItems(
        self, request: sessions_pb2.ListSessionItemsRequest, context: Context
    ) -> sessions_pb2.ListSessionItemsResponse:
        page = await self._sessions.list_items(
            current_scope(),
            ids.session_id(request.session_id, required=True),
            request.page_size,
            request.page_token,
        )
        return sessions_pb2.ListSessionItemsResponse(
            items=[item_to_proto(i) for i in page.items], next_page_token=page.next_page_token
        )

    @unary
    async def DeleteSession(
        self, request: sessions_pb2.DeleteSessionRequest, context: Context
    ) -> sessions_pb2.DeleteSessionResponse:
        deleted = await self._deleter.delete_session(
            current_scope(),
            ids.session_id(request.session_id, required=True),
            delete_runs=request.delete_runs,
            force=request.force,
            allow_missing=request.allow_missing,
        )
        return sessions_pb2.DeleteSessionResponse(
            deleted_items=deleted.session_items, deleted_runs=deleted.runs
        )
