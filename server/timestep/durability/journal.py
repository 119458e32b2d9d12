"""The step journal's data format: a completed call's result as JSON, and back.

Entries are plain JSON (no pickles): reading one runs no code, and it does not depend on the
classes of the build that wrote it. Each entry carries `version` (`ENTRY_VERSION`) and a `kind`:

- a model call: "response" (an OpenAI Responses `Response`, what a streamed call completes with)
  or "model_response" (the Agents SDK's `ModelResponse`, what a non-streamed call returns),
  holding what the SDK reads of them: the output items as Responses API JSON, the usage, the
  response and request ids;
- a tool call: "json" (a JSON value, kept as it is), "typed" (the value of a tool with a
  declared output type, as that type's JSON), "tool_output" (`ToolOutputText`/`Image`/
  `FileContent`, one or a list) or "text" (anything else: its `str()`, which is what the SDK
  sends the model for such a value, so a replay shows the model the same output).

An entry this build cannot read (another version, or JSON its classes no longer accept) raises
`JournalIncompatibleError`, which fails the run with code `journal_incompatible`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from agents import FunctionTool, ModelResponse
from agents.tool import (
    ToolOutputFileContent,
    ToolOutputImage,
    ToolOutputText,
    ValidToolOutputPydanticModelsTypeAdapter,
)
from agents.usage import deserialize_usage, serialize_usage
from openai.types.responses import Response
from pydantic import BaseModel, TypeAdapter, ValidationError

from timestep.domain import RunErrorCode
from timestep.runtime.sdk_internals import output_type_adapter
from timestep.runtime.steps import StepReplayError

ENTRY_VERSION: Final = 1

Entry = dict[str, Any]

_ANY_JSON: Final = TypeAdapter(Any)
_TOOL_OUTPUTS: Final = (ToolOutputText, ToolOutputImage, ToolOutputFileContent)


class JournalIncompatibleError(StepReplayError):
    """A recorded step this build cannot replay."""

    def __init__(self, message: str) -> None:
        super().__init__(RunErrorCode.JOURNAL_INCOMPATIBLE, message)


# ----- model calls ------------------------------------------------------------------------------


def encode_model_result(result: Response | ModelResponse) -> Entry:
    """The entry of a completed model call."""
    if isinstance(result, Response):
        return _entry(
            "response",
            id=result.id,
            created_at=result.created_at,
            model=result.model,
            status=result.status,
            parallel_tool_calls=result.parallel_tool_calls,
            tool_choice=_dump(result.tool_choice)
            if isinstance(result.tool_choice, BaseModel)
            else result.tool_choice,
            output=[_dump(item) for item in result.output],
            usage=_dump(result.usage) if result.usage is not None else None,
            request_id=getattr(result, "_request_id", None),  # set by the OpenAI client
        )
    return _entry(
        "model_response",
        output=[_dump(item) for item in result.output],
        usage=serialize_usage(result.usage),
        response_id=result.response_id,
        request_id=result.request_id,
        raw_usage=result.raw_usage,
    )


def decode_model_result(entry: Entry) -> Response | ModelResponse:
    kind = _kind(entry, "response", "model_response")
    with _readable(entry):
        if kind == "response":
            response = _api_response(
                {
                    **{key: entry[key] for key in _RESPONSE_FIELDS},
                    **({"usage": entry["usage"]} if entry["usage"] is not None else {}),
                }
            )
            response._request_id = entry["request_id"]
            return response
        return ModelResponse(
            output=_api_response({"output": entry["output"]}).output,
            usage=deserialize_usage(entry["usage"]),
            response_id=entry["response_id"],
            request_id=entry["request_id"],
            raw_usage=entry["raw_usage"],
        )


def _api_response(fields: dict[str, Any]) -> Response:
    """A `Response` read from Responses API JSON as the OpenAI client reads the API's answers
    (`construct`: typed items, no validation), so JSON written with another version of the
    library reads as that version's answers would. The request's echo (instructions, tools) is
    not kept: the SDK does not read it."""
    return Response.construct(**{"object": "response", "tools": [], **fields})


_RESPONSE_FIELDS: Final = (
    "id",
    "created_at",
    "model",
    "status",
    "parallel_tool_calls",
    "tool_choice",
    "output",
)


# ----- tool calls -------------------------------------------------------------------------------


def encode_tool_output(tool: FunctionTool, value: Any) -> Entry:
    """The entry of a tool call that returned `value`: the value itself when JSON holds it
    exactly, else what the SDK turns it into for the model."""
    if _is_json(value):
        return _entry("json", value=value)
    # The SDK validates and serializes a declared output type (or schema) itself; its JSON is
    # what the model sees, and the type rebuilds the value from it.
    typed = output_type_adapter(tool)
    if typed is not None or tool.output_json_schema is not None:
        try:
            dumped = (typed or _ANY_JSON).dump_python(value, mode="json")
        except (ValueError, TypeError):
            dumped = None  # the SDK refuses such a value: the call fails whatever is replayed
        if _is_json(dumped):
            return _entry("typed" if typed is not None else "json", value=dumped)
    if isinstance(value, _TOOL_OUTPUTS):
        return _entry("tool_output", value=_dump(value))
    if isinstance(value, list | tuple) and value and all(isinstance(v, _TOOL_OUTPUTS) for v in value):
        return _entry("tool_output", value=[_dump(v) for v in value])
    return _entry("text", value=str(value))


def decode_tool_output(tool: FunctionTool, entry: Entry) -> Any:
    kind = _kind(entry, "json", "typed", "tool_output", "text")
    with _readable(entry):
        value = entry["value"]
        if kind == "typed":
            typed = output_type_adapter(tool)
            if typed is None:
                raise JournalIncompatibleError(
                    f"The {tool.name} tool's recorded output was of its declared output type, and "
                    "the tool no longer declares one: the agent changed since the call was recorded."
                )
            return typed.validate_python(value)
        if kind == "tool_output":
            if isinstance(value, list):
                return [ValidToolOutputPydanticModelsTypeAdapter.validate_python(v) for v in value]
            return ValidToolOutputPydanticModelsTypeAdapter.validate_python(value)
        return value


# ----- helpers ----------------------------------------------------------------------------------


def _entry(kind: str, **fields: Any) -> Entry:
    return {"version": ENTRY_VERSION, "kind": kind, **fields}


def _dump(model: BaseModel) -> Any:
    # Only the fields that were set: a replayed item sent back to the model (the SDK dumps
    # items with exclude_unset) is then the same request as the first time.
    return model.model_dump(mode="json", exclude_unset=True)


def _kind(entry: Entry, *kinds: str) -> str:
    version = entry.get("version")
    if version != ENTRY_VERSION:
        raise JournalIncompatibleError(
            f"A recorded call is in step journal format version {version!r}, which this build does "
            f"not read (it reads version {ENTRY_VERSION}). Run a build that reads it to finish the "
            "run, or create the run again."
        )
    kind = entry.get("kind")
    if kind not in kinds:
        raise JournalIncompatibleError(
            f"A recorded call is of kind {kind!r} where this build expects one of {', '.join(kinds)} "
            f"(step journal format version {ENTRY_VERSION})."
        )
    return str(kind)


@contextmanager
def _readable(entry: Entry) -> Iterator[None]:
    """Turns JSON that the classes of this build refuse into a JournalIncompatibleError."""
    try:
        yield
    except (ValidationError, KeyError, TypeError) as error:
        raise JournalIncompatibleError(
            f"A recorded call of kind {entry.get('kind')!r} (step journal format version "
            f"{ENTRY_VERSION}) does not fit the classes of this build's libraries: {error}"
        ) from error


def _is_json(value: Any) -> bool:
    """Whether JSON holds `value` exactly (so that a replay returns an equal value of the same
    types; a tuple or a str subclass, for instance, would come back as something else)."""
    kind = type(value)
    if value is None or kind in (str, int, bool):
        return True
    if kind is float:
        return math.isfinite(value)
    try:
        if kind is list:
            return all(_is_json(item) for item in value)
        if kind is dict:
            return all(type(key) is str and _is_json(item) for key, item in value.items())
    except RecursionError:  # a value that contains itself
        return False
    return False
