"""Standard Webhooks signatures (https://www.standardwebhooks.com): a secret is "whsec_" and the
base64 of random bytes; a message is signed with HMAC-SHA256, keyed with those bytes, over
"<webhook-id>.<webhook-timestamp>.<body>", and sent as "v1,<base64 signature>"; several signatures
(one per secret, while a rotated-out secret is still accepted) are sent space separated."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
# 24 bytes: within the specification's 24 to 64.
SECRET_BYTES = 24


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value of a message."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    secret: str, message_id: str, timestamp: int, body: bytes, *, previous_secret: str = ""
) -> dict[str, str]:
    """The headers of a message signed with `secret` and, if given, `previous_secret` too."""
    keys = [secret, previous_secret] if previous_secret else [secret]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(key, message_id, timestamp, body) for key in keys),
    }
