"""User-chosen ids: one charset for every kind, and keys that name one tenant's id only."""

from __future__ import annotations

import pytest
from timestep import ids
from timestep.api.auth import TENANT_NAME
from timestep.errors import InvalidArgumentError


@pytest.mark.parametrize("value", ["s1", "conversation-42", "order_7.v2", "user:1234", "A" * 200])
def test_ids_of_the_charset_are_accepted_by_every_kind(value: str) -> None:
    assert ids.schedule_id(value) == ids.session_id(value) == ids.request_id(value) == value


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("acme/s1", "is not a valid id"),
        ("/s1", "is not a valid id"),
        ("order 42", "is not a valid id"),
        ("café", "is not a valid id"),
        ("A" * 201, "longer than 200 characters"),
    ],
)
def test_other_ids_are_refused_naming_the_field(value: str, says: str) -> None:
    kinds = ((ids.schedule_id, "schedule_id"), (ids.session_id, "session_id"), (ids.request_id, "request_id"))
    for check, field in kinds:
        with pytest.raises(InvalidArgumentError, match=says) as refused:
            check(value)
        assert refused.value.field == field


def test_optional_ids_may_be_empty_and_required_ones_say_where_to_find_one() -> None:
    assert ids.session_id("") == ids.request_id("") == ids.schedule_id("", required=False) == ""
    with pytest.raises(InvalidArgumentError, match="schedule_id is required: pass an id from"):
        ids.schedule_id("")


def test_keys_are_built_alike_for_every_tenant_and_never_collide() -> None:
    assert ids.scoped("acme", "s1") == "acme/s1"
    assert ids.scoped("", "s1") == "/s1"  # the anonymous tenant's is scoped too
    assert ids.scoped("", "s1").startswith(ids.tenant_prefix(""))
    assert not ids.scoped("acme", "s1").startswith(ids.tenant_prefix(""))
    assert not ids.scoped("acme2", "s1").startswith(ids.tenant_prefix("acme"))
    # What makes "<tenant>/<id>" unambiguous: neither part can contain the separator.
    assert TENANT_NAME.match("acme")
    assert not TENANT_NAME.match("acme/x")
