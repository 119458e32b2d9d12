"""The HTTP port: every RPC over the Connect protocol (JSON or binary, unary as plain POST and
server streaming) and gRPC-Web, and the web console at `/`, served by uvicorn in the service's
own process and event loop.

Browsers on other origins are refused (no CORS headers) unless named with `--cors-origin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

import grpc
import uvicorn
from connectrpc.compat import google_protobuf_codecs
from connectrpc.server import ConnectASGIApplication
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from timestep.api.grpc.server import HEALTH_SERVICE, SERVICES
from timestep.api.http.bridge import ConnectEndpoint, HandlerCollector, connect_endpoints
from timestep.settings import Limits

log = logging.getLogger(__name__)

# What browsers may send and read cross-origin (the Connect and gRPC-Web protocols' headers).
CORS_REQUEST_HEADERS = (
    "authorization",
    "content-type",
    "connect-protocol-version",
    "connect-timeout-ms",
    "grpc-timeout",
    "x-grpc-web",
    "x-user-agent",
    "x-request-id",
)
CORS_RESPONSE_HEADERS = ("grpc-status", "grpc-message", "grpc-status-details-bin")
# The console loads nothing from anywhere else (offline machines; no CDN).
CONSOLE_POLICY = (
    b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@dataclass(frozen=True)
class HttpTls:
    """PEM files: the server's certificate chain and key, and a CA whose clients it requires."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None


class _ConnectServices(ConnectASGIApplication[None]):
    path = "/"

    def __init__(self, endpoints: Mapping[str, ConnectEndpoint], read_max_bytes: int) -> None:
        super().__init__(
            service=None,
            endpoints=lambda _: endpoints,
            read_max_bytes=read_max_bytes,
            codecs=google_protobuf_codecs(),
        )


def console_files() -> str:
    """The folder of the console's built files (part of the package)."""
    return str(resources.files("timestep") / "console")


def http_app(
    endpoints: Mapping[str, ConnectEndpoint],
    *,
    read_max_bytes: int,
    cors_origins: Sequence[str] = (),
    console_dir: str | None = None,
) -> ASGIApp:
    """RPC paths go to the Connect endpoints; everything else is the console's files."""
    services = _ConnectServices(endpoints, read_max_bytes)
    console = StaticFiles(directory=console_dir or console_files(), html=True)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in endpoints:
            await services(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"content-security-policy", CONSOLE_POLICY),
                    (b"x-content-type-options", b"nosniff"),
                ]
            await send(message)

        try:
            await console(scope, receive, with_policy)
        except HTTPException as error:  # no such file (/favicon.ico), or not a GET
            await PlainTextResponse(error.detail, error.status_code)(scope, receive, send)

    if not cors_origins:
        return app
    return CORSMiddleware(
        app,
        allow_origins=list(cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=list(CORS_REQUEST_HEADERS),
        expose_headers=list(CORS_RESPONSE_HEADERS),
        max_age=7200,
    )


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # `timestep serve` handles SIGTERM and SIGINT itself (drain, then stop)


class HttpServer:
    """uvicorn serving `app` on a socket of its own, in the running event loop."""

    def __init__(self, app: ASGIApp, *, max_header_bytes: int, tls: HttpTls | None = None) -> None:
        config = uvicorn.Config(
            app,
            lifespan="off",
            http="h11",
            ws="none",
            log_config=None,
            access_log=False,
            h11_max_incomplete_event_size=max_header_bytes,
            ssl_certfile=tls.cert_file if tls else None,
            ssl_keyfile=tls.key_file if tls else None,
            ssl_ca_certs=tls.client_ca_file if tls else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if tls and tls.client_ca_file else ssl.CERT_NONE,
        )
        self._server = _EmbeddedServer(config)
        self._sockets: list[socket.socket] = []
        self._main_loop: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); returns the bound port."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            listener = socket.create_server((host.strip("[]"), port), family=family, reuse_port=False)
        except OSError as error:
            raise OSError(
                f"could not bind the HTTP port {host}:{port}; is another process using it?"
            ) from error
        self._sockets = [listener]
        server = self._server
        server.config.load()
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup(sockets=self._sockets)
        self._main_loop = asyncio.create_task(server.main_loop(), name="timestep http")
        bound: int = listener.getsockname()[1]
        return bound

    async def stop(self, grace: float) -> None:
        """Stop accepting, give open requests up to `grace` seconds, then close them."""
        self._server.config.timeout_graceful_shutdown = max(1, round(grace))
        self._server.should_exit = True
        if self._main_loop is not None:
            await self._main_loop
        await self._server.shutdown(sockets=self._sockets)


async def start_http_server(
    register: Callable[[HandlerCollector], None],
    interceptors: Sequence[grpc.aio.ServerInterceptor],
    limits: Limits,
    address: tuple[str, int],
    *,
    cors_origins: Sequence[str] = (),
    tls: HttpTls | None = None,
) -> tuple[HttpServer, int]:
    """The HTTP port serving what `register` registers (as on the gRPC server), behind the same
    `interceptors`, and the console; returns it started and its bound port."""
    collector = HandlerCollector()
    register(collector)
    endpoints = connect_endpoints((*SERVICES, HEALTH_SERVICE), collector, interceptors)
    app = http_app(endpoints, read_max_bytes=limits.max_message_bytes, cors_origins=cors_origins)
    server = HttpServer(app, max_header_bytes=limits.max_metadata_bytes, tls=tls)
    port = await server.start(*address)
    return server, port
