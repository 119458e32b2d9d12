"""Conversation items and token usage in each SDK's RunState form.

Python (openai-agents 0.24.0) stores raw Responses-API items; TypeScript (@openai/agents 0.20.0)
stores its own protocol items (Python → TypeScript):

- input message `{"role": "user", "content": …}` → `{type: "message", role: "user", content: …}`
- assistant `message` with parts `{type, text, annotations, logprobs}` → the same message, each
  part's extras (and the message's) under `providerData`
- `function_call {call_id, name, arguments, id, status}` → `function_call {callId, name,
  arguments, id, status, providerData: {type, id}}`
- `function_call_output {call_id, output: "text"}` → `function_call_result {callId, name,
  status: "completed", output: {type: "text", text}}` (the name is looked up by call id)

Usage: Python `{requests, input_tokens, input_tokens_details: [one summed entry], …,
request_usage_entries}` (a model response's usage has no entries); TypeScript `{requests,
inputTokens, inputTokensDetails: [one per request], …, requestUsageEntries}`.

Anything else (images, files, reasoning, refusals, other tool types) is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from timestep.state.unsupported import Unsupported, as_dict, as_list, refuse_unknown_keys

_INPUT_ROLES = ("user", "system", "developer")
_FUNCTION_CALL_KEYS = ("type", "id", "call_id", "name", "arguments", "status")


# ----- items: Python → TypeScript ---------------------------------------------------------------


def item_to_typescript(item: Any, call_names: Mapping[str, str]) -> dict[str, Any]:
    """A Responses-API item as the TypeScript SDK stores it. `call_names` maps call ids to tool
    names (a TypeScript function result names its tool; a Python output does not)."""
    item = as_dict(item, "conversation item")
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message" and item.get("role") == "assistant":
        return _assistant_message_to_typescript(item)
    if kind == "message":
        return _input_message_to_typescript(item)
    if kind == "function_call":
        refuse_unknown_keys(item, _FUNCTION_CALL_KEYS, "function_call item")
        call = {
            "type": "function_call",
            "callId": item["call_id"],
            "name": item["name"],
            "arguments": item["arguments"],
            "providerData": {key: item[key] for key in ("type", "id") if key in item},
        }
        call.update({key: item[key] for key in ("id", "status") if key in item})
        return call
    if kind == "function_call_output":
        refuse_unknown_keys(item, ("type", "call_id", "output"), "function_call_output item")
        call_id = item["call_id"]
        if call_id not in call_names:
            raise Unsupported(
                f"a function_call_output for call {call_id!r}, whose function_call is not in the state"
            )
        return {
            "type": "function_call_result",
            "name": call_names[call_id],
            "callId": call_id,
            "status": "completed",
            "output": {"type": "text", "text": _text_output(item["output"])},
        }
    raise Unsupported(f"{kind!r} items")


def _input_message_to_typescript(item: dict[str, Any]) -> dict[str, Any]:
    refuse_unknown_keys(item, ("type", "role", "content"), "input message")
    if item.get("role") not in _INPUT_ROLES:
        raise Unsupported(f"an input message with role {item.get('role')!r}")
    return {"type": "message", "role": item["role"], "content": _input_content(item["content"])}


def _assistant_message_to_typescript(item: dict[str, Any]) -> dict[str, Any]:
    refuse_unknown_keys(item, ("type", "id", "role", "status", "content"), "assistant message")
    if "status" not in item or not isinstance(item.get("content"), list):
        raise Unsupported("an assistant message without output_text parts and a status")
    parts = []
    for part in item["content"]:
        part = as_dict(part, "message part")
        if part.get("type") != "output_text":
            raise Unsupported(f"assistant message parts of type {part.get('type')!r}")
        refuse_unknown_keys(part, ("type", "text", "annotations", "logprobs"), "output_text part")
        extras = {key: value for key, value in part.items() if key not in ("type", "text")}
        parts.append({"providerData": extras, "type": "output_text", "text": part["text"]})
    message: dict[str, Any] = {"providerData": {}}
    message.update({key: item[key] for key in ("id",) if key in item})
    message.update({"type": "message", "role": "assistant", "status": item["status"], "content": parts})
    return message


# ----- items: TypeScript → Python ---------------------------------------------------------------


def item_to_python(item: Any) -> dict[str, Any]:
    """A TypeScript protocol item as the Python SDK stores it (a Responses-API item)."""
    item = as_dict(item, "conversation item")
    kind = item.get("type")
    if kind == "message" and item.get("role") == "assistant":
        return _assistant_message_to_python(item)
    if kind == "message":
        refuse_unknown_keys(item, ("type", "role", "content", "providerData"), "input message")
        _require_no_provider_data(item, "input message")
        if item.get("role") not in _INPUT_ROLES:
            raise Unsupported(f"an input message with role {item.get('role')!r}")
        return {"content": _input_content(item["content"]), "role": item["role"]}
    if kind == "function_call":
        refuse_unknown_keys(
            item,
            ("type", "id", "callId", "name", "arguments", "status", "providerData"),
            "function_call item",
        )
        # The TypeScript SDK repeats the item's type and id there; anything else is unknown.
        provider_data = as_dict(item.get("providerData") or {}, "function_call providerData")
        repeated = {"type": "function_call", "id": item.get("id")}
        if any(key not in repeated or value != repeated[key] for key, value in provider_data.items()):
            raise Unsupported(f"function_call providerData {json.dumps(provider_data)}")
        call = {
            "arguments": item["arguments"],
            "call_id": item["callId"],
            "name": item["name"],
            "type": "function_call",
        }
        call.update({key: item[key] for key in ("id", "status") if key in item})
        return call
    if kind == "function_call_result":
        refuse_unknown_keys(
            item, ("type", "name", "callId", "status", "output", "providerData"), "function_call_result item"
        )
        _require_no_provider_data(item, "function_call_result")
        output = item["output"]
        if isinstance(output, dict) and output.get("type") == "text" and set(output) == {"type", "text"}:
            output = output["text"]
        return {"call_id": item["callId"], "output": _text_output(output), "type": "function_call_output"}
    raise Unsupported(f"{kind!r} items")


def _assistant_message_to_python(item: dict[str, Any]) -> dict[str, Any]:
    refuse_unknown_keys(
        item, ("type", "id", "role", "status", "content", "providerData"), "assistant message"
    )
    _require_no_provider_data(item, "assistant message")
    if "status" not in item:
        raise Unsupported("an assistant message without a status")
    parts = []
    for part in as_list(item["content"], "message content"):
        part = as_dict(part, "message part")
        if part.get("type") != "output_text":
            raise Unsupported(f"assistant message parts of type {part.get('type')!r}")
        refuse_unknown_keys(part, ("type", "text", "providerData"), "output_text part")
        extras = as_dict(part.get("providerData", {}), "output_text providerData")
        refuse_unknown_keys(extras, ("annotations", "logprobs"), "output_text providerData")
        parts.append(
            {"annotations": extras.get("annotations", []), "text": part["text"], "type": "output_text"}
        )
        parts[-1].update({key: extras[key] for key in ("logprobs",) if key in extras})
    message: dict[str, Any] = {key: item[key] for key in ("id",) if key in item}
    message.update({"content": parts, "role": "assistant", "status": item["status"], "type": "message"})
    return message


def _require_no_provider_data(item: dict[str, Any], where: str) -> None:
    if item.get("providerData"):
        raise Unsupported(f"{where} providerData {json.dumps(item['providerData'])}")


# ----- shared item helpers ----------------------------------------------------------------------


def agent_reference(reference: Any) -> dict[str, str]:
    """An agent reference; both SDKs write `{"name": …}` for agents with unique names."""
    reference = as_dict(reference, "agent reference")
    refuse_unknown_keys(reference, ("name",), "agent reference (several agents with one name)")
    return {"name": reference["name"]}


def python_transfer_message(agent_name: str) -> str:
    """The handoff output the Python SDK writes (`json.dumps({"assistant": name})`)."""
    return json.dumps({"assistant": agent_name})


def typescript_transfer_message(agent_name: str) -> str:
    """The handoff output the TypeScript SDK writes (`JSON.stringify({assistant: name})`)."""
    return json.dumps({"assistant": agent_name}, separators=(",", ":"), ensure_ascii=False)


def _input_content(content: Any) -> str | list[dict[str, str]]:
    """String content, or `input_text` parts; both SDKs write these the same way."""
    if isinstance(content, str):
        return content
    parts = []
    for part in as_list(content, "message content"):
        part = as_dict(part, "message part")
        if part.get("type") != "input_text" or set(part) != {"type", "text"}:
            raise Unsupported(f"input message parts of type {part.get('type')!r}")
        parts.append({"type": "input_text", "text": part["text"]})
    return parts


def _text_output(output: Any) -> str:
    if not isinstance(output, str):
        raise Unsupported("tool outputs that are not text (images, files or content lists)")
    return output


# ----- usage ------------------------------------------------------------------------------------

_PYTHON_USAGE_KEYS = (
    "requests",
    "input_tokens",
    "input_tokens_details",
    "output_tokens",
    "output_tokens_details",
    "total_tokens",
    "request_usage_entries",
)
_TYPESCRIPT_USAGE_KEYS = (
    "requests",
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "inputTokensDetails",
    "outputTokensDetails",
    "requestUsageEntries",
)


def usage_to_typescript(usage: Any, *, one_response: bool) -> dict[str, Any]:
    """Python usage as TypeScript stores it. For `one_response` (a model response's usage, which
    Python stores without request entries) the single request's entry is spelled out, as the
    TypeScript SDK does."""
    usage = as_dict(usage, "usage")
    refuse_unknown_keys(usage, _PYTHON_USAGE_KEYS, "usage")
    entries = [
        _entry_to_typescript(entry) for entry in as_list(usage["request_usage_entries"], "usage entries")
    ]
    if one_response and not entries and usage["requests"] == 1:
        [input_details] = as_list(usage["input_tokens_details"], "usage details")
        [output_details] = as_list(usage["output_tokens_details"], "usage details")
        entries = [
            _entry_to_typescript(
                {
                    "input_tokens": usage["input_tokens"],
                    "output_tokens": usage["output_tokens"],
                    "total_tokens": usage["total_tokens"],
                    "input_tokens_details": input_details,
                    "output_tokens_details": output_details,
                }
            )
        ]
    converted: dict[str, Any] = {
        "requests": usage["requests"],
        "inputTokens": usage["input_tokens"],
        "outputTokens": usage["output_tokens"],
        "totalTokens": usage["total_tokens"],
        "inputTokensDetails": [entry["inputTokensDetails"] for entry in entries]
        or [_input_details_to_typescript(d) for d in as_list(usage["input_tokens_details"], "usage details")],
        "outputTokensDetails": [entry["outputTokensDetails"] for entry in entries]
        or [_output_details(d) for d in as_list(usage["output_tokens_details"], "usage details")],
    }
    if entries:
        converted["requestUsageEntries"] = entries
    return converted


def _entry_to_typescript(entry: Any) -> dict[str, Any]:
    entry = as_dict(entry, "usage entry")
    refuse_unknown_keys(
        entry,
        ("input_tokens", "output_tokens", "total_tokens", "input_tokens_details", "output_tokens_details"),
        "usage entry",
    )
    return {
        "inputTokens": entry["input_tokens"],
        "outputTokens": entry["output_tokens"],
        "totalTokens": entry["total_tokens"],
        "inputTokensDetails": _input_details_to_typescript(entry["input_tokens_details"]),
        "outputTokensDetails": _output_details(entry["output_tokens_details"]),
    }


def _input_details_to_typescript(details: Any) -> dict[str, int]:
    details = as_dict(details, "input token details")
    refuse_unknown_keys(
        details, ("cached_tokens", "cache_write_tokens", "cache_write_tokens_details"), "input token details"
    )
    if details.get("cache_write_tokens_details") is not None:
        raise Unsupported("a cache_write_tokens_details breakdown in usage")
    return {
        "cached_tokens": details.get("cached_tokens", 0),
        "cache_write_tokens": details.get("cache_write_tokens", 0),
    }


def _output_details(details: Any) -> dict[str, int]:
    details = as_dict(details, "output token details")
    refuse_unknown_keys(details, ("reasoning_tokens",), "output token details")
    return {"reasoning_tokens": details.get("reasoning_tokens", 0)}


def usage_to_python(usage: Any, *, one_response: bool) -> dict[str, Any]:
    """TypeScript usage as Python stores it: details summed into one entry; request entries only
    for the run's total (`one_response` False), as the Python SDK writes them."""
    usage = as_dict(usage, "usage")
    refuse_unknown_keys(usage, _TYPESCRIPT_USAGE_KEYS, "usage")
    entries = [
        _entry_to_python(entry) for entry in as_list(usage.get("requestUsageEntries", []), "usage entries")
    ]
    return {
        "requests": usage["requests"],
        "input_tokens": usage["inputTokens"],
        "input_tokens_details": [_input_details_to_python(_summed(usage.get("inputTokensDetails", [])))],
        "output_tokens": usage["outputTokens"],
        "output_tokens_details": [_output_details(_summed(usage.get("outputTokensDetails", [])))],
        "total_tokens": usage["totalTokens"],
        "request_usage_entries": [] if one_response else entries,
    }


def _entry_to_python(entry: Any) -> dict[str, Any]:
    entry = as_dict(entry, "usage entry")
    refuse_unknown_keys(
        entry,
        (
            "inputTokens",
            "outputTokens",
            "totalTokens",
            "inputTokensDetails",
            "outputTokensDetails",
            "endpoint",
        ),
        "usage entry",
    )
    return {
        "input_tokens": entry["inputTokens"],
        "output_tokens": entry["outputTokens"],
        "total_tokens": entry["totalTokens"],
        "input_tokens_details": _input_details_to_python(entry.get("inputTokensDetails", {})),
        "output_tokens_details": _output_details(entry.get("outputTokensDetails", {})),
    }


def _input_details_to_python(details: Any) -> dict[str, Any]:
    details = as_dict(details, "input token details")
    refuse_unknown_keys(details, ("cached_tokens", "cache_write_tokens"), "input token details")
    return {
        "cache_write_tokens": details.get("cache_write_tokens", 0),
        "cached_tokens": details.get("cached_tokens", 0),
        "cache_write_tokens_details": None,
    }


def _summed(details: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for entry in as_list(details, "usage details"):
        for key, value in as_dict(entry, "usage detail").items():
            total[key] = total.get(key, 0) + value
    return total
