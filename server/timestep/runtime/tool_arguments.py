"""Arguments an approver edits a tool call to: a JSON object that must match the tool's
parameter schema, as the model's own arguments would."""

from __future__ import annotations

import json
from typing import Any

from timestep.errors import InvalidArgumentError
from timestep.runtime.registry import AgentRegistry

FIELD = "arguments_json"
# A refusal names at most this many problems.
MAX_VIOLATIONS = 20


def check_arguments(registry: AgentRegistry, agent: str, tool: str, arguments_json: str) -> str:
    """`arguments_json` when it is a JSON object that `tool` of `agent` accepts; INVALID_ARGUMENT
    with a field violation per problem (`arguments_json.<path>`) otherwise."""
    try:
        arguments = json.loads(arguments_json)
    except (ValueError, RecursionError) as error:
        raise InvalidArgumentError(
            f"{FIELD} is not valid JSON ({error}). Pass the tool's arguments as a JSON object.", field=FIELD
        ) from error
    if not isinstance(arguments, dict):
        raise InvalidArgumentError(
            f'{FIELD} must be a JSON object of the tool\'s arguments, e.g. {{"city": "Paris"}}.', field=FIELD
        )
    function_tool = registry.function_tool(agent, tool)
    if function_tool is None:
        raise InvalidArgumentError(
            f"The arguments of {tool!r} cannot be edited: agent {agent!r} has no such function tool in "
            "this service.",
            field=FIELD,
        )
    schema: dict[str, Any] = function_tool.params_json_schema
    # Imported on the first edit, not at start-up (it takes a tenth of a second).
    from jsonschema import Draft202012Validator

    problems = sorted(Draft202012Validator(schema).iter_errors(arguments), key=lambda e: list(e.path))
    if problems:
        violations = [
            (".".join([FIELD, *(str(part) for part in problem.path)]), problem.message)
            for problem in problems[:MAX_VIOLATIONS]
        ]
        raise InvalidArgumentError(
            f"{FIELD} does not match the parameters of {tool!r}: "
            + "; ".join(f"{field}: {description}" for field, description in violations),
            field=FIELD,
            violations=violations,
        )
    return arguments_json
