"""How a conversation is put to a small local model, and how its forced tool call is read back.

Small instruction-tuned models (Gemma 3 270M) follow a plain chat template of alternating user
and assistant turns after one system text; they know no tool-call syntax, and cannot be trusted
to decide to call a tool. So:

* tools are called only when the model settings force it (`tool_choice` naming a tool, or
  "required"); the reply is then generated under a grammar that admits only
  ``{"name": <tool>, "arguments": <that tool's JSON schema>}``, so the call is always well formed.
  With "auto" (or no choice) the reply is text;
* earlier tool calls appear as that JSON in assistant turns, and their results as user turns
  ("Result of send_email: ..."), so any chat template can render the conversation;
* structured outputs are generated under their JSON schema's grammar.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from timestep.domain import RunErrorCode
from timestep.runtime.models.chat_completions import message_text
from timestep.runtime.models.errors import ModelProviderError

JSON = dict[str, Any]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: JSON

    @classmethod
    def of(cls, tool: ChatCompletionToolParam) -> ToolSpec:
        function = cast(Mapping[str, Any], tool["function"])
        return cls(
            function["name"], function.get("description") or "", dict(function.get("parameters") or {})
        )


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments_json: str


def forced_tools(tool_choice: object, tools: Sequence[ToolSpec], model: str) -> list[ToolSpec]:
    """The tools a reply must call one of: all of them for "required", the one a name names;
    none (a text reply) for "auto", "none", or no choice."""
    if not tools or tool_choice in (None, "auto", "none"):
        return []
    if tool_choice == "required":
        return list(tools)
    if isinstance(tool_choice, str):
        named = [tool for tool in tools if tool.name == tool_choice]
        if named:
            return named
        offered = ", ".join(tool.name for tool in tools)
        raise ModelProviderError(
            RunErrorCode.MODEL_ERROR,
            f"The model settings force a call of {tool_choice!r} (tool_choice), which is none of the "
            f'tools offered to {model!r}: {offered}. Name one of them, or use "required" or "auto".',
        )
    raise ModelProviderError(
        RunErrorCode.MODEL_INPUT_UNSUPPORTED,
        f'{model!r} cannot take tool_choice {tool_choice!r}: a local model takes "auto", '
        '"required", "none" or the name of a function tool.',
    )


def call_schema(tools: Sequence[ToolSpec]) -> JSON:
    """The JSON schema of a reply that calls one of `tools`."""
    options: list[JSON] = [
        {
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": tool.parameters or {"type": "object"}},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def read_call(text: str, tools: Sequence[ToolSpec], model: str, finish_reason: str) -> ToolCall:
    """The tool call of a reply generated under `call_schema(tools)`."""
    try:
        call = json.loads(text)
    except ValueError:
        call = None
    if not isinstance(call, dict) or call.get("name") not in {tool.name for tool in tools}:
        cut = (
            " It was cut off by max_tokens: raise ModelSettings.max_tokens."
            if finish_reason == "length"
            else ""
        )
        raise ModelProviderError(
            RunErrorCode.MODEL_BEHAVIOR,
            f"{model!r} did not complete its tool call: {text[:200]!r}.{cut}",
        )
    return ToolCall(f"call_{uuid.uuid4().hex}", call["name"], json.dumps(call.get("arguments") or {}))


def prompt_messages(
    system_instructions: str | None,
    messages: Iterable[ChatCompletionMessageParam],
    *,
    forced: Sequence[ToolSpec],
    output_schema: JSON | None,
    model: str,
) -> list[dict[str, str]]:
    """The conversation as one system text and alternating user and assistant turns."""
    system = [system_instructions] if system_instructions else []
    turns: list[dict[str, str]] = []
    call_names: dict[str, str] = {}
    for message in messages:
        fields = cast(Mapping[str, Any], message)
        role, content = fields["role"], _text_only(fields.get("content"), model)
        if role in ("system", "developer"):
            system.append(content)
        elif role == "assistant":
            calls = [call for call in fields.get("tool_calls") or [] if call.get("type") == "function"]
            for call in calls:
                call_names[call["id"]] = call["function"]["name"]
            lines = [content] if content else []
            lines += [_call_text(call["function"]) for call in calls]
            _add_turn(turns, "assistant", "\n".join(lines))
        elif role == "tool":
            name = call_names.get(fields.get("tool_call_id", ""), "the tool")
            _add_turn(turns, "user", f"Result of {name}: {content}")
        else:
            _add_turn(turns, "user", content)
    if forced:
        system.append(_tool_instructions(forced))
    elif output_schema is not None:
        system.append(f"Answer with a JSON object matching this JSON schema: {json.dumps(output_schema)}")
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": ""})  # chat templates begin with the user
    prefix = [{"role": "system", "content": "\n\n".join(system)}] if system else []
    return prefix + turns


def _add_turn(turns: list[dict[str, str]], role: str, content: str) -> None:
    """Append a turn, merged into the last one if that is of the same role (templates alternate)."""
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"] = f"{turns[-1]['content']}\n\n{content}"
    else:
        turns.append({"role": role, "content": content})


def _call_text(function: Mapping[str, Any]) -> str:
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        arguments = function.get("arguments")
    return json.dumps({"name": function["name"], "arguments": arguments})


def _tool_instructions(tools: Sequence[ToolSpec]) -> str:
    listed = "\n".join(
        f"- {tool.name}: {tool.description} Arguments: {json.dumps(tool.parameters.get('properties', {}))}"
        for tool in tools
    )
    return (
        'Call a tool now: answer only with a JSON object {"name": <tool name>, "arguments": {...}} '
        f"calling one of these tools, with arguments taken from the conversation:\n{listed}"
    )


def _text_only(content: Any, model: str) -> str:
    if isinstance(content, list) and any(part.get("type") not in ("text", "refusal") for part in content):
        raise ModelProviderError(
            RunErrorCode.MODEL_INPUT_UNSUPPORTED,
            f"{model!r} takes text only: send the input without images, audio or files, or use a "
            "model that takes them.",
        )
    return message_text(content)
