"""The README's Python webhook verification, run as written against signatures made by
`standardwebhooks` (not the service's code), one or two of them (during a rotation's overlap)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

README = Path(__file__).resolve().parents[2] / "README.md"
BODY = b'{"type":"webhook.test","timestamp":"2026-01-01T00:00:00+00:00","data":{"webhook_id":"wh_1"}}'


def readme_verify() -> Callable[..., None]:
    section = README.read_text().split("### Webhooks", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README lost its webhook verification example"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)
    verify: Callable[..., None] = namespace["verify"]
    return verify


def signed(secret: str, body: bytes, when: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign("msg_1", when, body.decode())
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


def test_the_readme_verification_accepts_a_signed_body_and_refuses_a_changed_or_stale_one() -> None:
    verify = readme_verify()
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    now = datetime.now(UTC)

    verify(secret, signed(secret, BODY, now), BODY)
    with pytest.raises(ValueError, match="bad signature"):
        verify(secret, signed(secret, BODY, now), BODY.replace(b"wh_1", b"wh_2"))
    with pytest.raises(ValueError, match="stale"):
        verify(secret, signed(secret, BODY, datetime(2020, 1, 1, tzinfo=UTC)), BODY)


def test_the_readme_verification_accepts_either_secret_of_a_rotation_and_no_other() -> None:
    verify = readme_verify()
    new, previous = (
        "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    )
    now = datetime.now(UTC)
    # During a rotation's overlap: both signatures, space separated, the new one first.
    headers = signed(new, BODY, now)
    headers["webhook-signature"] += " " + signed(previous, BODY, now)["webhook-signature"]

    verify(new, headers, BODY)
    verify(previous, headers, BODY)
    with pytest.raises(ValueError, match="bad signature"):
        verify("whsec_" + "dGhpcyBpcyBub3Qgb25lIG9mIHRoZW0hIQ==", headers, BODY)
