"""The tool-invocation identities each SDK stores beside its approval decisions.

Both SDKs bind a decision to the exact tool call it was made for, so that a call id reused with
other arguments is not silently approved. Each writes that binding in its own form:

* Python (openai-agents 0.24.0) keeps, per call id, a SHA-256 *approval scope* (the tool's
  identity) and *fingerprint* (scope plus canonical arguments). They are computed here by the
  SDK's own function, so they match what the SDK writes by construction.
* TypeScript (@openai/agents 0.20.0) keeps the canonical invocation JSON itself: a stable
  (key-sorted) `JSON.stringify` of caller, type, tool name and arguments, where every JSON
  number and every string that could be mistaken for one is encoded as a tagged string. That
  algorithm (`getToolInvocationFingerprint` in `toolInvocation.js`) is ported below.
"""

from __future__ import annotations

import json
import re
from typing import Any

from timestep.runtime.sdk_internals import tool_invocation_approval_scope, tool_invocation_identity_and_scope

_JSON_TOKEN_PREFIX = "\u0000openai-agents-json:"
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


# ----- Python ------------------------------------------------------------------------------------


def python_tool_scope(tool_name: str) -> str:
    """The approval scope of a bare function tool (what `sticky_scope` of an "always" decision holds)."""
    identity = tool_invocation_approval_scope(
        {"type": "function_call", "name": tool_name}, tool_lookup_key=("bare", tool_name)
    )
    assert identity is not None, "a bare function tool always has an approval scope"
    return identity[1]


def python_invocation(call: dict[str, Any], *, handoff: bool) -> tuple[str, str]:
    """`(approval_scope, fingerprint)` of a Responses-API function_call item, as the SDK records them."""
    identity = (
        tool_invocation_identity_and_scope(call, invocation_role="handoff")
        if handoff
        else tool_invocation_identity_and_scope(call, tool_lookup_key=("bare", call["name"]))
    )
    assert identity is not None, "a function_call with a call id always has an identity"
    _, _, scope, fingerprint = identity
    return scope, fingerprint


# ----- TypeScript --------------------------------------------------------------------------------


def typescript_tool_state_key(tool_name: str) -> str:
    """The state key of a bare function tool, e.g. '["bare","send_email"]'."""
    return _js_stringify(["bare", tool_name])


def typescript_handoff_name(tool_name: str) -> str:
    """The name a handoff call is fingerprinted under, e.g. "handoff:transfer_to_billing"."""
    return f"handoff:{tool_name}"


def typescript_invocation(tool_name: str, arguments: str) -> str:
    """`getToolInvocationFingerprint(toolName, call)` of a direct (non-programmatic) function call."""
    return _js_stringify(
        {
            "caller": {"type": "direct"},
            "type": "function_call",
            "toolName": tool_name,
            "payload": _json_payload(arguments),
        }
    )


class _JsonNumber(str):
    """The source text of a JSON number, kept exact (no float rounding)."""


def _json_payload(arguments: str) -> dict[str, Any]:
    """`normalizeJsonString`: arguments as parsed JSON with tagged numbers, or the raw text."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        parsed = json.loads(
            arguments,
            parse_int=_JsonNumber,
            parse_float=_JsonNumber,
            parse_constant=refuse,
            object_pairs_hook=lambda pairs: {_tag(key): value for key, value in pairs},
        )
    except ValueError:
        return {"format": "raw", "value": arguments}
    return {"format": "json", "value": _tag_values(parsed)}


def _tag(text: str) -> str:
    """`encodeJsonNumbers` for strings: one that starts with the tag prefix is escaped."""
    return f"{_JSON_TOKEN_PREFIX}string:{text}" if text.startswith(_JSON_TOKEN_PREFIX) else text


def _tag_values(value: Any) -> Any:
    if isinstance(value, _JsonNumber):
        return f"{_JSON_TOKEN_PREFIX}number:{_canonical_number(value)}"
    if isinstance(value, str):
        return _tag(value)
    if isinstance(value, dict):
        return {key: _tag_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tag_values(item) for item in value]
    return value


def _canonical_number(text: str) -> str:
    """`canonicalizeJsonNumber`: digits without leading/trailing zeros and a decimal exponent."""
    mantissa, _, exponent_text = text.lower().partition("e")
    negative = mantissa.startswith("-")
    integer, _, fraction = mantissa.removeprefix("-").partition(".")
    digits = (integer + fraction).lstrip("0")
    if not digits:
        return "-0" if negative else "0"
    exponent = int(exponent_text or "0") - len(fraction)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    return f"{'-' if negative else ''}{stripped}e{exponent}"


def _js_stringify(value: Any) -> str:
    """`JSON.stringify` of `stableStringify`: keys sorted as JavaScript compares strings (UTF-16 code
    units), except that array-index keys ("0", "17") come first in numeric order, as JavaScript
    objects always enumerate them."""
    return json.dumps(_sorted_keys(value), separators=(",", ":"), ensure_ascii=False)


def _js_key_order(key: str) -> tuple[int, int, bytes]:
    if _ARRAY_INDEX.fullmatch(key) and int(key) < 2**32 - 1:
        return (0, int(key), b"")
    return (1, 0, key.encode("utf-16-be"))


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value, key=_js_key_order)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value
