"""Scrubbing the service's keys from provider errors before they are logged or recorded."""

from __future__ import annotations

import pickle

import httpx2
import openai
import pytest
from timestep.runtime.secrets import REDACTED, scrub, scrub_exception

KEY = "sk-unit-secret-5b1d0e"


@pytest.fixture(autouse=True)
def key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def test_scrub_replaces_every_occurrence_of_a_key() -> None:
    assert scrub(f"bad key {KEY}, Bearer {KEY}") == f"bad key {REDACTED}, Bearer {REDACTED}"
    assert scrub("nothing secret") == "nothing secret"


def test_a_scrubbed_openai_error_pickles_without_the_key_and_keeps_what_failures_need() -> None:
    request = httpx2.Request(
        "POST", "http://127.0.0.1:1/v1/responses", headers={"Authorization": f"Bearer {KEY}"}
    )
    body = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    response = httpx2.Response(401, json=body, request=request)
    error = openai.AuthenticationError(f"Error code: 401 - {body}", response=response, body=body)

    scrub_exception(error)

    assert KEY.encode() not in pickle.dumps(error)
    assert KEY not in str(error)
    assert error.status_code == 401
    assert error.request.url == request.url
