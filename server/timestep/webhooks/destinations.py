"""Which webhook destinations the service may connect to.

By default only public (globally routable) unicast addresses: loopback, private, link-local,
shared, reserved, multicast and unspecified addresses are refused, and so are cloud metadata
endpoints. `allow_private` lets loopback, private and link-local addresses through (receivers on
the service's own network); metadata endpoints, multicast and unspecified addresses stay refused.

A URL is checked twice: at validation, without resolving anything (an address literal, or a name
that means loopback such as "localhost"); and at every attempt, on each address its host name
resolves to, before connecting to that very address (`timestep.webhooks.client`), so a name that
resolves elsewhere later (DNS rebinding) cannot reach a refused address.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import SplitResult, urlsplit

from timestep.errors import InvalidArgumentError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH: Final = 2048
FORBIDDEN: Final = "WEBHOOK_DESTINATION_FORBIDDEN"
# Cloud instance metadata services (AWS, GCP, Azure, OpenStack...; AWS's IPv6 one).
METADATA_ADDRESSES: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
# Names that resolve to loopback by definition (RFC 6761).
_LOOPBACK_NAMES: Final = ("localhost", ".localhost")


class ForbiddenDestination(Exception):
    """An address the service must not connect to; the message says which and why."""


def _unmapped(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (::ffff:10.0.0.1) as the IPv4 address it reaches."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_address(address: Address, *, allow_private: bool) -> None:
    """Raise ForbiddenDestination unless the service may connect to `address`."""
    address = _unmapped(address)
    if address in METADATA_ADDRESSES:
        raise ForbiddenDestination(f"{address} is a cloud metadata address")
    if address.is_multicast or address.is_unspecified:
        raise ForbiddenDestination(f"{address} is a multicast or unspecified address")
    if address.is_global or allow_private:
        return
    raise ForbiddenDestination(
        f"{address} is a loopback, private, link-local or reserved address (allowed only with "
        "--webhook-allow-private)"
    )


def validate_url(url: str, *, allow_private: bool, field: str = "url") -> str:
    """`url` if it may be subscribed; INVALID_ARGUMENT otherwise, decided without any network
    traffic (the address a host name resolves to is checked at each attempt)."""
    parts = _parse(url, field)
    host = parts.hostname or ""
    try:
        check_address(ipaddress.ip_address(host), allow_private=allow_private)
    except ForbiddenDestination as refused:
        raise InvalidArgumentError(
            f"{field} {url[:200]!r} is refused: {refused}.", field=field, reason=FORBIDDEN
        ) from None
    except ValueError:  # a host name
        if not allow_private and (host == _LOOPBACK_NAMES[0] or host.endswith(_LOOPBACK_NAMES[1])):
            raise InvalidArgumentError(
                f"{field} {url[:200]!r} is refused: {host} is a loopback name (allowed only with "
                "--webhook-allow-private).",
                field=field,
                reason=FORBIDDEN,
            ) from None
    return url


def _parse(url: str, field: str) -> SplitResult:
    def invalid(problem: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"{field} {url[:200]!r} {problem}. Give an http(s) URL such as "
            "https://example.com/hooks/timestep.",
            field=field,
        )

    if not url.strip():
        raise InvalidArgumentError(f"{field} is required: the http(s) URL to POST events to.", field=field)
    if len(url) > MAX_URL_LENGTH:
        raise InvalidArgumentError(
            f"{field} is longer than {MAX_URL_LENGTH} characters.", field=field, reason="FIELD_TOO_LONG"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        raise invalid(f"is not a URL ({error})") from error
    if parts.scheme not in ("http", "https"):
        raise invalid("is not an http or https URL")
    if not parts.hostname:
        raise invalid("has no host")
    if parts.username is not None or parts.password is not None:
        raise invalid("carries a user name or password (sign-in details do not belong in a URL)")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise invalid("contains spaces or control characters")
    return parts
