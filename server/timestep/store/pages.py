"""Paging shared by every List call: the page size rule and opaque page tokens.

A token holds the sort key of the last item served (so the next page starts after it, however
the list changed meanwhile) and a scope naming the list and its filters (a token of another
list or filter is refused rather than misread)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import TypeVar

from timestep.errors import InvalidArgumentError

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def clamp_page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgumentError(
            f"page_size must not be negative; pass 1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}.",
            field="page_size",
        )
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(scope: str, after: list[str]) -> str:
    raw = json.dumps({"s": scope, "a": after})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_page_token(token: str, scope: str, parse: Callable[[list[str]], T]) -> T | None:
    """The sort key `token` holds, read by `parse`; None for no token (the first page)."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        after = data["a"]
        if data["s"] != scope or not isinstance(after, list) or not all(isinstance(p, str) for p in after):
            raise ValueError("scope")
        if any("\x00" in part for part in after):  # never in a token this service issued
            raise ValueError("NUL")
        return parse(after)
    except (
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        OverflowError,
        binascii.Error,
        UnicodeDecodeError,
    ) as error:
        raise InvalidArgumentError(
            "page_token is not a token this service issued for these filters; "
            "start again with an empty page_token.",
            field="page_token",
        ) from error
