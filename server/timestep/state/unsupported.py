"""How the converters refuse what they do not support: by naming it, never by guessing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class Unsupported(Exception):
    """The state uses a construct the conversion does not support; `construct` says which.

    `timestep.state.codec.convert` turns it into an `UnsupportedStateError` that also names
    the SDKs and schema versions involved.
    """

    def __init__(self, construct: str) -> None:
        super().__init__(construct)
        self.construct = construct


def refuse_unknown_keys(value: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """Refuse keys the converter does not know: they may carry meaning it would drop."""
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise Unsupported(
            f"{where} field(s) {', '.join(map(repr, unknown))}, which the conversion does not know"
        )


def require_absent_or(value: Mapping[str, Any], key: str, defaults: Iterable[Any], construct: str) -> None:
    """Refuse `value[key]` unless it is missing or one of its `defaults` (e.g. None, [], {})."""
    if key in value and value[key] not in list(defaults):
        raise Unsupported(f"{construct} ({key})")


def as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unsupported(f"a {where} that is not a JSON object")
    return value


def as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Unsupported(f"a {where} that is not a JSON array")
    return value
