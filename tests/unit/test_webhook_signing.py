"""Signatures as Standard Webhooks defines them, checked against `standardwebhooks` (an
implementation that is not ours), and the destination rules of webhook URLs."""

from __future__ import annotations

import base64
import ipaddress
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook as StandardWebhook
from timestep.errors import InvalidArgumentError
from timestep.webhooks import signing
from timestep.webhooks.destinations import ForbiddenDestination, check_address, validate_url


def test_a_signed_message_verifies_with_an_independent_implementation() -> None:
    secret = signing.new_secret()
    body = b'{"type":"run.completed","data":{"text":"caf\\u00e9 \\ud83d\\ude00"}}'
    timestamp = int(time.time())

    headers = signing.headers(secret, "msg_1", timestamp, body)

    assert StandardWebhook(secret).verify(body, headers)["type"] == "run.completed"
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert (
        StandardWebhook(secret).sign("msg_1", datetime.fromtimestamp(timestamp, UTC), body.decode())
        == headers["webhook-signature"]
    )


def test_a_signature_does_not_verify_for_another_secret_id_or_body() -> None:
    secret = signing.new_secret()
    headers = signing.headers(secret, "msg_1", int(time.time()), b"{}")

    for changed_secret, changed_headers, body in (
        (signing.new_secret(), headers, b"{}"),
        (secret, {**headers, "webhook-id": "msg_2"}, b"{}"),
        (secret, headers, b"{ }"),
    ):
        with pytest.raises(Exception, match="signature"):
            StandardWebhook(changed_secret).verify(body, changed_headers)


def test_a_message_signed_during_a_rotation_verifies_with_either_secret_and_no_other() -> None:
    new, previous = signing.new_secret(), signing.new_secret()
    timestamp = int(time.time())

    headers = signing.headers(new, "msg_1", timestamp, b"{}", previous_secret=previous)

    assert headers["webhook-signature"].split(" ") == [
        signing.signature(new, "msg_1", timestamp, b"{}"),
        signing.signature(previous, "msg_1", timestamp, b"{}"),
    ]
    for secret in (new, previous):
        assert StandardWebhook(secret).verify(b"{}", headers) == {}
    with pytest.raises(Exception, match="signature"):
        StandardWebhook(signing.new_secret()).verify(b"{}", headers)


@pytest.mark.parametrize(
    ("address", "allowed_by_default", "allowed_with_private"),
    [
        ("93.184.216.34", True, True),
        ("2606:4700::6810:84e5", True, True),
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("10.0.0.1", False, True),
        ("172.16.0.1", False, True),
        ("192.168.0.1", False, True),
        ("fc00::1", False, True),
        ("fe80::1", False, True),
        ("100.64.0.1", False, True),
        ("::ffff:127.0.0.1", False, True),
        ("169.254.169.254", False, False),
        ("fd00:ec2::254", False, False),
        ("::ffff:169.254.169.254", False, False),
        ("224.0.0.1", False, False),
        ("0.0.0.0", False, False),
        ("::", False, False),
    ],
)
def test_which_addresses_may_be_connected_to(
    address: str, allowed_by_default: bool, allowed_with_private: bool
) -> None:
    for allow_private, allowed in ((False, allowed_by_default), (True, allowed_with_private)):
        if allowed:
            check_address(ipaddress.ip_address(address), allow_private=allow_private)
        else:
            with pytest.raises(ForbiddenDestination):
                check_address(ipaddress.ip_address(address), allow_private=allow_private)


def test_a_url_is_judged_without_resolving_its_host() -> None:
    # A name is left to the check at connect time (no DNS here): only literals and loopback names.
    assert validate_url("https://hooks.example.com/x", allow_private=False) == "https://hooks.example.com/x"
    for url in ("http://app.localhost/x", "http://10.0.0.1/x", "https://[::1]/x"):
        with pytest.raises(InvalidArgumentError) as refused:
            validate_url(url, allow_private=False)
        assert refused.value.reason == "WEBHOOK_DESTINATION_FORBIDDEN"
        assert refused.value.field == "url"
