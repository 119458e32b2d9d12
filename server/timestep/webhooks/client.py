"""The HTTP client that delivers webhooks, safe against server-side request forgery.

Each attempt resolves the URL's host itself, checks every address it resolves to
(`destinations.check_address`), and connects to the checked address (the host name goes in the
Host header and, over TLS, in SNI and certificate checks): what was checked is what is reached,
whatever the name resolves to a moment later. Redirects are not followed, proxies from the
environment are not used, every phase has a timeout, and only the first bytes of a response are
read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httpx2

from timestep.webhooks import signing
from timestep.webhooks.destinations import Address, ForbiddenDestination, check_address
from timestep.webhooks.types import AttemptOutcome, Target

# How much of a response body is kept (the rest is not read).
RESPONSE_PREFIX_BYTES: Final = 512
USER_AGENT: Final = "Timestep-Webhooks/1"

# (host, port) -> the addresses it resolves to.
Resolver = Callable[[str, int], Awaitable[list[Address]]]


async def system_resolver(host: str, port: int) -> list[Address]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # The scope of a link-local IPv6 address ("fe80::1%eth0") is not part of the address.
    return [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]


@dataclass(frozen=True)
class ClientSettings:
    allow_private: bool = False
    connect_timeout_s: float = 5.0
    # Each read (and write) of the request or response; the whole attempt is bounded by total.
    read_timeout_s: float = 10.0
    total_timeout_s: float = 30.0


class WebhookClient:
    def __init__(self, settings: ClientSettings, resolver: Resolver = system_resolver) -> None:
        self._settings = settings
        self._resolver = resolver
        self._http = httpx2.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            timeout=httpx2.Timeout(
                connect=settings.connect_timeout_s,
                read=settings.read_timeout_s,
                write=settings.read_timeout_s,
                pool=settings.connect_timeout_s,
            ),
            # A fresh connection per attempt: a pooled one would skip the address check.
            limits=httpx2.Limits(max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, target: Target, message_id: str, body: bytes) -> AttemptOutcome:
        """POST `body` to the target, signed; never raises for what the receiver or the network
        did (the outcome says)."""
        started = time.perf_counter()

        def outcome(code: int = 0, error: str = "", prefix: str = "") -> AttemptOutcome:
            return AttemptOutcome(code, (time.perf_counter() - started) * 1000, error, prefix)

        try:
            async with asyncio.timeout(self._settings.total_timeout_s):
                return await self._send(target, message_id, body, outcome)
        except ForbiddenDestination as refused:
            return outcome(error=f"refused before connecting: {refused}")
        except TimeoutError:
            return outcome(error="timed out")
        except httpx2.TimeoutException as error:
            return outcome(error=f"timed out ({type(error).__name__})")
        except (httpx2.HTTPError, OSError) as error:
            return outcome(error=f"{type(error).__name__}: {error}"[:500])

    async def _send(
        self,
        target: Target,
        message_id: str,
        body: bytes,
        outcome: Callable[..., AttemptOutcome],
    ) -> AttemptOutcome:
        parts = urlsplit(target.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await self._checked_address(host, port)
        literal = f"[{address}]" if address.version == 6 else str(address)
        pinned = parts._replace(netloc=f"{literal}:{port}").geturl()
        headers = {
            "host": parts.netloc.rpartition("@")[2],
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signing.headers(
                target.secret, message_id, int(time.time()), body, previous_secret=target.previous_secret
            ),
        }
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        request = self._http.build_request(
            "POST", pinned, content=body, headers=headers, extensions=extensions
        )
        response = await self._http.send(request, stream=True)
        try:
            prefix = bytearray()
            async for chunk in response.aiter_raw():
                prefix += chunk
                if len(prefix) >= RESPONSE_PREFIX_BYTES:
                    break
        finally:
            await response.aclose()
        text = bytes(prefix[:RESPONSE_PREFIX_BYTES]).decode("utf-8", errors="replace")
        return outcome(response.status_code, prefix=text)

    async def _checked_address(self, host: str, port: int) -> Address:
        """The address to connect to: `host` if it is one, else the first it resolves to, once
        every address it resolves to has been checked."""
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await self._resolver(host, port)
        if not addresses:
            raise ForbiddenDestination(f"{host} resolves to no address")
        for address in addresses:
            check_address(address, allow_private=self._settings.allow_private)
        return addresses[0]
