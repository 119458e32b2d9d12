"""Keeping the service's own keys out of what it stores and logs.

A provider may echo the key it was sent in an error message (a proxy quoting the Authorization
header, "Incorrect API key provided: sk-..."). Such text reaches run errors, events, DBOS's
recorded step results and log lines, so the keys the service holds are replaced wherever
provider text enters the service.
"""

from __future__ import annotations

import os
from typing import Any

import httpx2

REDACTED = "[redacted]"
# Environment variables holding keys the service sends to providers and tools.
KEY_VARIABLES = ("OPENAI_API_KEY", "OLLAMA_API_KEY", "FIRECRAWL_API_KEY")
# Shorter values could be ordinary words; real keys are much longer.
MIN_SECRET_LENGTH = 8

_configured: set[str] = set()


def remember_secrets(*values: str) -> None:
    """Treat these (configured, not from the environment) values as secrets too."""
    _configured.update(value for value in values if len(value) >= MIN_SECRET_LENGTH)


def _secrets() -> list[str]:
    from_env = (os.environ.get(name, "") for name in KEY_VARIABLES)
    found = _configured | {value for value in from_env if len(value) >= MIN_SECRET_LENGTH}
    return sorted(found, key=len, reverse=True)  # a key containing another is replaced whole


def scrub(text: str) -> str:
    """`text` with every known secret replaced."""
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrub_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub_value(item) for item in value)
    return value


def scrub_exception(error: BaseException) -> BaseException:
    """Remove known secrets from an exception (in place) before it is logged or recorded (DBOS
    pickles a failed step's exception): its args, the `message` and `body` the OpenAI SDK's
    errors carry, and their HTTP request, whose headers hold the key."""
    error.args = _scrub_value(error.args)
    for attribute in ("message", "body"):
        if isinstance(getattr(error, attribute, None), str | dict | list):
            setattr(error, attribute, _scrub_value(getattr(error, attribute)))
    request = getattr(error, "request", None)
    if isinstance(request, httpx2.Request):
        bare = httpx2.Request(request.method, request.url)  # no headers: they carry the key
        error.request = bare  # type: ignore[attr-defined]
        response = getattr(error, "response", None)
        if isinstance(response, httpx2.Response):
            try:
                content = scrub(response.text).encode()
            except httpx2.ResponseNotRead:
                content = b""
            error.response = httpx2.Response(  # type: ignore[attr-defined]
                response.status_code, headers=response.headers, content=content, request=bare
            )
    return error
