"""API keys and tenants.

Operators configure keys as `tenant:sha256:<hex digest>` entries (never the keys themselves); a
client sends its key as `authorization: Bearer <key>` metadata. The interceptor hashes what it
receives, looks the digest up, and binds the key's tenant, which the gRPC adapter puts in each
handler's `CallContext` and the handlers pass to every read and write: each tenant sees only its
own runs, interruptions, states, schedules and usage. With no keys configured every caller is the
default tenant "".
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

import grpc

from timestep.observability.interceptor import OPEN_METHOD_PREFIXES, with_behavior
from timestep.settings import ConfigurationError

log = logging.getLogger(__name__)

AUTHORIZATION_HEADER = "authorization"
DEFAULT_TENANT = ""
KEY_PREFIX = "ts_"
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")

# The tenant of the RPC being served; the auth interceptor sets it before the handler runs.
_tenant: ContextVar[str] = ContextVar("timestep_tenant", default=DEFAULT_TENANT)


def current_tenant() -> str:
    """The calling tenant (read it in the RPC's own task, before a stream's first response)."""
    return _tenant.get()


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A new random API key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeyConfigError(ConfigurationError):
    pass


@dataclass(frozen=True)
class ApiKeys:
    """Hashed API keys and the tenant each belongs to."""

    tenants_by_digest: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, entries: Iterable[str], source: str = "") -> ApiKeys:
        """Entries `tenant:sha256:<64 hex>`; blank lines and `#` comments are skipped."""
        tenants: dict[str, str] = {}
        where = f" in {source}" if source else ""
        for number, raw in enumerate(entries, 1):
            entry = raw.split("#", 1)[0].strip()
            if not entry:
                continue
            tenant, _, digest = entry.partition(":")
            if not TENANT_NAME.match(tenant) or not _DIGEST.match(digest):
                raise ApiKeyConfigError(
                    f"API key entry {number}{where} is not 'tenant:sha256:<64 hex digits>' (tenant: letters, "
                    "digits, '.', '_', '-'). Create entries with `timestep api-keys create --tenant NAME`."
                )
            tenants[digest.removeprefix("sha256:")] = tenant
        return cls(tenants)

    @classmethod
    def load(cls, text: str = "", path: str = "") -> ApiKeys:
        """Keys from TIMESTEP_API_KEYS-style text (entries separated by commas or newlines) and an
        optional file of entries, one per line."""
        entries = re.split(r"[,\n]", text) if text else []
        keys = cls.parse(entries, "TIMESTEP_API_KEYS")
        if path:
            try:
                with open(path, encoding="utf-8") as file:
                    from_file = cls.parse(file, path)
            except OSError as error:
                raise ApiKeyConfigError(f"cannot read API keys file {path}: {error.strerror}") from error
            keys = cls({**keys.tenants_by_digest, **from_file.tenants_by_digest})
        return keys

    def __bool__(self) -> bool:
        return bool(self.tenants_by_digest)

    @property
    def tenants(self) -> set[str]:
        return set(self.tenants_by_digest.values())

    def tenant_for(self, key: str) -> str | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        for known, tenant in self.tenants_by_digest.items():
            if hmac.compare_digest(known, digest):
                return tenant
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, keys: ApiKeys, *, allow_unauthenticated: bool) -> None:
    """Without API keys, say loudly that anyone who can connect may do anything, and refuse to
    listen beyond this machine unless the operator said so."""
    if keys:
        log.info("API keys: %d configured for %d tenants", len(keys.tenants_by_digest), len(keys.tenants))
        return
    if not _is_loopback(host) and not allow_unauthenticated:
        raise ConfigurationError(
            f"refusing to listen on {host} without API keys: anyone who can reach it could read and "
            "approve every run. Configure keys (--api-keys-file or TIMESTEP_API_KEYS; create one with "
            "`timestep api-keys create --tenant NAME`), or pass --allow-unauthenticated if the network "
            "in front of the service authenticates callers."
        )
    log.warning(
        "UNAUTHENTICATED: no API keys are configured, so every caller can read, approve and cancel "
        "every run (listening on %s). Configure keys with --api-keys-file or TIMESTEP_API_KEYS.",
        host,
    )


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    for name, value in metadata or ():
        if name == AUTHORIZATION_HEADER and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


MISSING_KEY = (
    "this service requires an API key: send it as 'authorization: Bearer <key>' metadata "
    "(timestep CLI: --api-key or TIMESTEP_API_KEY)"
)
WRONG_KEY = "the API key is not valid for this service; check the key, or ask the operator for one"


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Checks `authorization: Bearer` keys and binds the caller's tenant. Health checking and
    reflection stay open unless `protect_open_methods`."""

    def __init__(self, keys: ApiKeys, *, protect_open_methods: bool = False) -> None:
        self._keys = keys
        self._open = () if protect_open_methods else OPEN_METHOD_PREFIXES

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if not self._keys or handler is None or handler_call_details.method.startswith(self._open):
            return handler  # without keys, everyone is the default tenant
        token = bearer_token(handler_call_details.invocation_metadata)
        tenant = self._keys.tenant_for(token) if token else None

        async def authenticate(context: grpc.aio.ServicerContext) -> None:
            if tenant is None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, WRONG_KEY if token else MISSING_KEY)
            _tenant.set(tenant)  # type: ignore[arg-type]

        return wrap_handler(handler, authenticate)


Check = Callable[[grpc.aio.ServicerContext], Awaitable[None]]


def wrap_handler(handler: grpc.RpcMethodHandler, check: Check) -> grpc.RpcMethodHandler:
    """`handler` with `check(context)` awaited first, in the RPC's own task (so context
    variables it sets are seen by the servicer)."""
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def checked_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            return await unary(request, context)

        return with_behavior(handler, checked_unary)
    # Server streaming (event streams, health Watch) and bidirectional (reflection).
    stream = handler.unary_stream or handler.stream_stream
    if stream is None:
        raise TypeError(f"no client-streaming RPCs are served; cannot wrap {handler!r}")

    async def checked_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await check(context)
        async for response in stream(request, context):
            yield response

    return with_behavior(handler, checked_stream)
