"""A raw Connect client for tests: JSON over plain HTTP POST, as curl sends it (unary), and the
Connect streaming envelope (server streams), with errors in Connect's JSON error format."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from timestep_testing.helpers import WAIT

END_STREAM_FLAG = 0b10
STREAMING_JSON = "application/connect+json"


@dataclass(frozen=True)
class ConnectResult:
    """What a call returned: its messages (one for unary calls) and, if it failed, the Connect
    error object ({"code", "message", "details"})."""

    status: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None

    @property
    def code(self) -> str:
        return "ok" if self.error is None else str(self.error["code"])

    def details(self) -> list[tuple[str, bytes]]:
        """The error's google.rpc details as (type, serialized message)."""
        return [
            (detail["type"], base64.b64decode(detail["value"] + "=" * (-len(detail["value"]) % 4)))
            for detail in (self.error or {}).get("details", [])
        ]


def path_of(request: Message) -> str:
    """The RPC a request message is for: CreateRunRequest → /timestep.v1.RunService/CreateRun."""
    method = type(request).__name__.removesuffix("Request")
    for service in request.DESCRIPTOR.file.services_by_name.values():
        if method in service.methods_by_name:
            return f"/{service.full_name}/{method}"
    raise ValueError(f"no RPC takes {type(request).__name__}")


def connect_code(code: grpc.StatusCode) -> str:
    """Connect's name for a gRPC status code."""
    return "canceled" if code == grpc.StatusCode.CANCELLED else code.name.lower()


async def call(
    session: aiohttp.ClientSession,
    base_url: str,
    path: str,
    body: dict[str, Any] | bytes,
    *,
    api_key: str = "",
    streaming: bool = False,
    headers: dict[str, str] | None = None,
) -> ConnectResult:
    """POST `body` (JSON, or a serialized message as bytes) to `path` (unary), or as one
    enveloped message (server streaming). Responses are read as JSON (ask for JSON)."""
    sent = {**({"authorization": f"Bearer {api_key}"} if api_key else {}), **(headers or {})}
    codec = "proto" if isinstance(body, bytes) else "json"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if not streaming:
        sent["content-type"] = f"application/{codec}"
        async with session.post(base_url + path, data=data, headers=sent, timeout=_timeout()) as response:
            if response.status == 200 and codec == "proto":
                return ConnectResult(200, [{"binary": base64.b64encode(await response.read()).decode()}])
            payload = await response.json(content_type=None)
            if response.status == 200:
                return ConnectResult(200, [payload])
            return ConnectResult(response.status, error=payload)
    sent["content-type"] = f"application/connect+{codec}"
    envelope = struct.pack(">BI", 0, len(data)) + data
    async with session.post(base_url + path, data=envelope, headers=sent, timeout=_timeout()) as response:
        raw = await response.read()
    messages: list[dict[str, Any]] = []
    error = None
    while raw:
        flags, size = struct.unpack(">BI", raw[:5])
        chunk = raw[5 : 5 + size]
        raw = raw[5 + size :]
        if flags & END_STREAM_FLAG:  # always JSON
            error = json.loads(chunk).get("error")
        elif codec == "json":
            messages.append(json.loads(chunk))
        else:
            messages.append({"binary": base64.b64encode(chunk).decode()})
    return ConnectResult(response.status, messages, error)


async def call_message(
    session: aiohttp.ClientSession, base_url: str, request: Message, *, api_key: str = ""
) -> ConnectResult:
    """Send `request` to its RPC over Connect: as JSON, or serialized when JSON cannot carry it
    (e.g. a timestamp out of JSON's range)."""
    path = path_of(request)
    method = request.DESCRIPTOR.file.pool.FindMethodByName(path.strip("/").replace("/", "."))
    body: dict[str, Any] | bytes
    try:
        body = json_format.MessageToDict(request)
    except json_format.SerializeToJsonError:
        body = request.SerializeToString()
    return await call(session, base_url, path, body, api_key=api_key, streaming=method.server_streaming)


async def stream(
    session: aiohttp.ClientSession, base_url: str, path: str, body: dict[str, Any], *, api_key: str = ""
) -> AsyncIterator[dict[str, Any]]:
    """A server stream's JSON messages as they arrive; raises ConnectStreamError if it ends with
    an error."""
    headers = {"content-type": STREAMING_JSON, **({"authorization": f"Bearer {api_key}"} if api_key else {})}
    data = json.dumps(body).encode()
    envelope = struct.pack(">BI", 0, len(data)) + data
    async with session.post(base_url + path, data=envelope, headers=headers) as response:
        while True:
            flags, size = struct.unpack(">BI", await response.content.readexactly(5))
            message = json.loads(await response.content.readexactly(size))
            if flags & END_STREAM_FLAG:
                if "error" in message:
                    raise ConnectStreamError(message["error"])
                return
            yield message


class ConnectStreamError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


def _timeout() -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=WAIT)
