"""The webhook client checks the address it is about to connect to, after resolving, and
connects to that very address: a host name that resolves to a refused address (DNS rebinding)
reaches nothing, proven against a receiver on loopback that must see no request."""

from __future__ import annotations

import ipaddress

from timestep.webhooks.client import ClientSettings, Resolver, WebhookClient, system_resolver
from timestep.webhooks.destinations import Address
from timestep.webhooks.signing import new_secret
from timestep.webhooks.types import AttemptOutcome, Target

from timestep_testing.fakes.webhook_receiver import WebhookReceiver, verified

BODY = b'{"type":"webhook.test","timestamp":"2026-01-01T00:00:00+00:00","data":{}}'


def resolving_to(address: str) -> tuple[list[str], Resolver]:
    """A resolver that answers `address` for any name, and the names it was asked for."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[Address]:
        asked.append(host)
        return [ipaddress.ip_address(address)]

    return asked, resolve


async def send(
    url: str, *, allow_private: bool, resolver: Resolver = system_resolver, secret: str = ""
) -> AttemptOutcome:
    client = WebhookClient(ClientSettings(allow_private=allow_private), resolver)
    try:
        return await client.send(Target(url, secret or new_secret()), "msg_test", BODY)
    finally:
        await client.aclose()


async def test_a_name_that_resolves_to_loopback_is_refused_before_connecting() -> None:
    asked, resolver = resolving_to("127.0.0.1")
    async with WebhookReceiver() as receiver:
        outcome = await send(
            f"http://hooks.example:{receiver.port}/hooks", allow_private=False, resolver=resolver
        )

    assert asked == ["hooks.example"]
    assert outcome.response_code == 0
    assert outcome.error.startswith("refused before connecting: 127.0.0.1")
    assert receiver.received == []


async def test_localhost_as_the_system_resolves_it_is_refused_before_connecting() -> None:
    async with WebhookReceiver() as receiver:
        outcome = await send(f"http://localhost:{receiver.port}/hooks", allow_private=False)
        ipv6 = await send(f"http://[::1]:{receiver.port}/hooks", allow_private=False)

    assert "refused before connecting" in outcome.error
    assert "refused before connecting: ::1" in ipv6.error
    assert receiver.received == []


async def test_with_private_destinations_allowed_the_checked_address_is_the_one_reached() -> None:
    asked, resolver = resolving_to("127.0.0.1")
    secret = new_secret()
    async with WebhookReceiver() as receiver:
        outcome = await send(
            f"http://hooks.example:{receiver.port}/hooks",
            allow_private=True,
            resolver=resolver,
            secret=secret,
        )

    assert asked == ["hooks.example"]
    assert outcome.response_code == 200
    [received] = receiver.received
    # Reached at the resolved address, named as the URL names it.
    assert received.headers["host"] == f"hooks.example:{receiver.port}"
    assert received.id == "msg_test"
    assert verified(received, secret) == {
        "type": "webhook.test",
        "timestamp": "2026-01-01T00:00:00+00:00",
        "data": {},
    }


async def test_a_redirect_is_not_followed_and_a_refused_connection_is_reported() -> None:
    async with WebhookReceiver(statuses=[307]) as receiver:
        redirected = await send(receiver.url, allow_private=True)
    closed = await send(receiver.url, allow_private=True)  # the receiver is gone

    assert redirected.response_code == 307
    assert len(receiver.received) == 1
    assert closed.response_code == 0
    assert "ConnectError" in closed.error
