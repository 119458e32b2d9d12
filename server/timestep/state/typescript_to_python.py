"""TypeScript RunState (@openai/agents 0.20.0, schema 1.22) → Python RunState (openai-agents
0.24.0, schema 1.21), for a run paused on tool approvals.

The result is what the Python SDK itself writes for the same run (TypeScript → Python):

- camelCase top level (`currentTurn`, …) → snake_case (`current_turn`, …)
- run items (`rawItem`, `toolName`, `functionToolStateKey`) → (`raw_item`, `tool_name`,
  `tool_lookup_key`, `tool_origin`); their raw items as in `items`
- a handoff output's text `{"assistant":"billing"}` → the Python SDK's `{"assistant": "billing"}`
- `context.functionApprovals` (+ `approvalInvocations`, which must bind every per-call
  decision) → `context.function_tool_approvals`, with the `sticky_scope` of "always" decisions
- every call of the history → `context.tool_invocations` (its approval scope and fingerprint,
  executed and completed when its output is in the history)
- approval items of earlier pauses (kept as completion evidence) → `session_items`
- `currentTurnPersistedItemCount` (index into `generatedItems`) →
  `current_turn_persisted_item_count` (this turn's session-saved items, approval items not
  counted)
- `context.context` (a JSON object) → `context.context` with the `context_meta` of a mapping
- `trace`, `currentAgentSpan` → `null`: the run continues in a new trace

Python does not record, so the result leaves out: `modelResponses[].providerData` (the raw API
response), usage `endpoint`s, `tool_call_output_item.executionStatus`,
`currentTurnSessionInputItems` (input to save if a run paused without a session resumes with
one; Python does not do that). A TypeScript state records the descriptions of the last
response's tools only, so only those `tool_call_item`s carry a `description` (informational).

Longer than the service's ~450-line modules on purpose: this is one direction of one conversion,
its steps share the conversion being built and are read top to bottom against the other SDK's
format; split, each half would reach into the other's private helpers.
"""

from __future__ import annotations

import json
from typing import Any

from timestep.state import items
from timestep.state.document import PYTHON, SCHEMA_VERSIONS
from timestep.state.fingerprints import (
    python_invocation,
    python_tool_scope,
    typescript_invocation,
    typescript_tool_state_key,
)
from timestep.state.unsupported import (
    Unsupported,
    as_dict,
    as_list,
    refuse_unknown_keys,
    require_absent_or,
)

_EMPTY = {
    "pendingInput": ([], "input added to the paused run"),
    "inputGuardrailResults": ([], "input guardrail results"),
    "outputGuardrailResults": ([], "output guardrail results"),
    "toolInputGuardrailResults": ([], "tool input guardrail results"),
    "toolOutputGuardrailResults": ([], "tool output guardrail results"),
    "pendingAgentToolRuns": ({}, "agents used as tools"),
    "pendingAgentToolRunAliases": ({}, "agents used as tools"),
    "currentTurnSessionWriteCompactedItemCount": (0, "a compacted session write"),
    "currentTurnDeferredSessionItemIndexes": ([], "session items deferred by an output guardrail"),
    "pendingLegacyCompactionSessionItems": ([], "a legacy session compaction"),
}
_ABSENT = {
    "currentTurnBlockedSessionStartIndex": "session items blocked by an output guardrail",
    "currentTurnExecutedWithSessionBinding": "an unfinished session write",
    "pendingSessionHistoryTransaction": "an unfinished session write",
    "pendingSessionWrite": "an unfinished session write",
    "conversationId": "a server-managed conversation",
    "previousResponseId": "a server-managed conversation",
    "reasoningItemIdPolicy": "a reasoning item id policy",
    "sandbox": "a sandbox session",
}
_KNOWN = (
    "$schemaVersion",
    "currentTurn",
    "currentAgent",
    "originalInput",
    "modelResponses",
    "context",
    "toolUseTracker",
    "maxTurns",
    "currentAgentSpan",
    "noActiveAgentRun",
    "initialInputGuardrailsCompleted",
    "currentTurnInProgress",
    "currentStep",
    "lastModelResponse",
    "generatedItems",
    "currentResponseGeneratedItemOwnership",
    "lastProcessedResponse",
    "currentTurnPersistedItemCount",
    "currentTurnSessionInputItems",
    "completedToolInvocations",
    "completedToolInvocationEvidence",
    "ambiguousToolInvocationCallIds",
    "trace",
    *_EMPTY,
    *_ABSENT,
)
_EMPTY_ACTIONS = (
    "handoffs",
    "functionToolsNotFound",
    "computerActions",
    "shellActions",
    "applyPatchActions",
    "mcpApprovalRequests",
)
_FUNCTION_ORIGIN = {"type": "function"}


def to_python(state: dict[str, Any]) -> dict[str, Any]:
    """The Python RunState JSON object for a paused TypeScript RunState JSON object."""
    _check_top_level(state)
    return _Conversion(state).state()


def _check_top_level(state: dict[str, Any]) -> None:
    for key, construct in _ABSENT.items():
        if key in state:
            raise Unsupported(f"{construct} ({key})")
    refuse_unknown_keys(state, _KNOWN, "top-level")
    for key, (default, construct) in _EMPTY.items():
        require_absent_or(state, key, [default], construct)
    if state.get("initialInputGuardrailsCompleted") is False:
        raise Unsupported("input guardrails that have not completed (initialInputGuardrailsCompleted)")
    if any(
        entry.get("callIds")
        for entry in as_list(state.get("ambiguousToolInvocationCallIds", []), "ambiguous")
    ):
        raise Unsupported("tool call ids reused for different calls (ambiguousToolInvocationCallIds)")
    step = as_dict(state.get("currentStep") or {}, "currentStep")
    if step.get("type") != "next_step_interruption":
        raise Unsupported("a run that is not paused on tool approvals (currentStep)")
    refuse_unknown_keys(as_dict(step["data"], "currentStep data"), ("interruptions",), "currentStep data")


class _Conversion:
    def __init__(self, state: dict[str, Any]) -> None:
        self.source = state
        self.generated: list[dict[str, Any]] = [as_dict(item, "run item") for item in state["generatedItems"]]
        self.context = as_dict(state["context"], "context")
        # Tool descriptions the state records (those of the last response's function calls).
        processed = state.get("lastProcessedResponse") or {}
        self.descriptions = {
            f["tool"]["name"]: f["tool"]["description"]
            for f in processed.get("functions", [])
            if isinstance(f.get("tool", {}).get("description"), str)
        }
        # (agent, call id) → the Python function_call item, for the calls of the generated items.
        self.calls: dict[tuple[str, str], dict[str, Any]] = {}
        for item in self.generated:
            if item["type"] in ("tool_call_item", "handoff_call_item", "tool_approval_item"):
                raw = items.item_to_python(item["rawItem"])
                self.calls.setdefault((item["agent"]["name"], raw["call_id"]), raw)

    # ----- top level ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        s = self.source
        model_responses = [self._model_response(r) for r in as_list(s["modelResponses"], "modelResponses")]
        generated = [self._item(item) for item in self.generated]
        interruptions = [
            self._item(as_dict(i, "interruption")) for i in s["currentStep"]["data"]["interruptions"]
        ]
        session, session_indexes = self._session_items(generated)
        converted: dict[str, Any] = {
            "$schemaVersion": SCHEMA_VERSIONS[PYTHON],
            "current_turn": s["currentTurn"],
            "current_agent": items.agent_reference(s["currentAgent"]),
            "original_input": self._input(s["originalInput"]),
            "pending_input": [],
            "model_responses": model_responses,
            "context": self._context(),
            "tool_use_tracker": s["toolUseTracker"],
            "max_turns": s["maxTurns"],
            "no_active_agent_run": True,
            "input_guardrail_results": [],
            "output_guardrail_results": [],
            "tool_input_guardrail_results": [],
            "tool_output_guardrail_results": [],
            "conversation_id": None,
            "previous_response_id": None,
            "auto_previous_response_id": False,
            "generated_prompt_cache_key": None,
            "reasoning_item_id_policy": None,
            "nested_history_owned_session_item_refs": [],
            "generated_session_item_indexes": session_indexes,
        }
        ownership = s.get("currentResponseGeneratedItemOwnership")
        if ownership is not None:
            ownership = as_dict(ownership, "currentResponseGeneratedItemOwnership")
            require_absent_or(
                ownership, "toolOutputGuardrailResultStartIndex", [0], "tool output guardrail results"
            )
            converted["current_response_generated_item_ownership"] = {
                "start": ownership["generatedItemStartIndex"],
                "end": ownership["generatedItemEndIndexExclusive"],
                "interruptions": ownership["interruptionGeneratedItemIndexes"],
            }
        converted["generated_items"] = generated
        converted["session_items"] = session
        converted["current_step"] = {
            "type": "next_step_interruption",
            "data": {
                "interruptions": interruptions,
                "response_accepted": False,
                "llm_end_hooks_started": True,
            },
        }
        converted["last_model_response"] = model_responses[-1] if model_responses else None
        processed = s.get("lastProcessedResponse")
        converted["last_processed_response"] = (
            self._processed_response(processed, interruptions) if processed is not None else None
        )
        converted["current_turn_persisted_item_count"] = self._persisted_count(ownership)
        converted["trace"] = None
        return converted

    def _session_items(self, generated: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
        """Python's `session_items` (the generated items plus the approval items of calls decided
        at an earlier pause, just before their outputs) and the index of each generated item in them.

        TypeScript keeps those approval items as the calls' completion evidence.
        """
        answered: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in as_list(self.source.get("completedToolInvocationEvidence", []), "completion evidence"):
            for evidence in as_dict(entry["invocations"], "completion evidence").values():
                first = evidence["items"][0]
                if "item" in first and first["item"]["type"] == "tool_approval_item":
                    approval = self._item(first["item"])
                    answered[_call_key(approval)] = approval
        session: list[dict[str, Any]] = []
        indexes: list[int] = []
        for index, item in enumerate(generated):
            if item["type"] == "tool_call_output_item" and _call_key(item) in answered:
                # Python kept them just before the first output they led to.
                earlier_calls = {_call_key(i) for i in generated[:index]}
                session += [answered.pop(key) for key in list(answered) if key in earlier_calls]
            indexes.append(len(session))
            session.append(item)
        return session, indexes

    def _input(self, value: Any) -> str | list[dict[str, Any]]:
        if isinstance(value, str):
            return value
        return [items.item_to_python(item) for item in as_list(value, "originalInput")]

    def _model_response(self, response: Any) -> dict[str, Any]:
        response = as_dict(response, "model response")
        refuse_unknown_keys(
            response, ("usage", "output", "responseId", "requestId", "providerData"), "model response"
        )
        return {
            "usage": items.usage_to_python(response["usage"], one_response=True),
            "output": [items.item_to_python(item) for item in response["output"]],
            "response_id": response.get("responseId"),
            "request_id": response.get("requestId"),
        }

    def _persisted_count(self, ownership: dict[str, Any] | None) -> int:
        """TypeScript stores the index in `generatedItems` up to which it saved to the session;
        Python counts the items of the current turn it saved, approval items not included."""
        saved_up_to = self.source.get("currentTurnPersistedItemCount", 0)
        if saved_up_to == 0:
            return 0
        start = ownership["generatedItemStartIndex"] if ownership else 0
        if saved_up_to < start or saved_up_to > len(self.generated):
            raise Unsupported(
                "a session save that ended outside the current turn (currentTurnPersistedItemCount)"
            )
        return sum(item["type"] != "tool_approval_item" for item in self.generated[start:saved_up_to])

    # ----- context and approvals ------------------------------------------------------------

    def _context(self) -> dict[str, Any]:
        c = self.context
        refuse_unknown_keys(
            c,
            (
                "usage",
                "approvals",
                "hostedMcpApprovals",
                "functionApprovals",
                "legacyFunctionApprovals",
                "approvalInvocations",
                "context",
            ),
            "context (e.g. toolInput of an agent used as a tool)",
        )
        require_absent_or(c, "approvals", [{}], "approval records of hosted tools or legacy form")
        require_absent_or(c, "hostedMcpApprovals", [{}], "hosted MCP approvals")
        require_absent_or(c, "legacyFunctionApprovals", [{}], "legacy function approvals")
        context = as_dict(c.get("context", {}), "context value")
        converted: dict[str, Any] = {
            "usage": items.usage_to_python(c["usage"], one_response=False),
            "approvals": {},
            "tool_invocations": self._tool_invocations(),
            "context": context,
            "context_meta": {
                "original_type": "mapping",
                "serialized_via": "mapping",
                "requires_deserializer": False,
                "omitted": False,
            },
        }
        approvals = self._approvals()
        if approvals:
            converted["function_tool_approvals"] = approvals
        return converted

    def _approvals(self) -> list[dict[str, Any]]:
        bound = self._bound_invocations()
        converted = []
        for entry in as_list(self.context.get("functionApprovals", []), "functionApprovals"):
            entry = as_dict(entry, "function approvals")
            agent = entry["agentIdentity"]
            for state_key, record in as_dict(entry["approvals"], "approvals").items():
                tool = _bare_tool_name(state_key)
                record = as_dict(record, "approval record")
                refuse_unknown_keys(
                    record, ("approved", "rejected", "messages", "stickyRejectMessage"), "approval record"
                )
                for key in ("approved", "rejected"):
                    for call_id in record[key] if isinstance(record[key], list) else []:
                        call = self.calls.get((agent, call_id))
                        if call is None or bound.get((agent, call_id)) != typescript_invocation(
                            state_key, call["arguments"]
                        ):
                            raise Unsupported(
                                f"a decision on call {call_id!r} not bound to that call (approvalInvocations)"
                            )
                decision: dict[str, Any] = {"approved": record["approved"], "rejected": record["rejected"]}
                if record.get("messages"):
                    decision["rejection_messages"] = record["messages"]
                if record.get("stickyRejectMessage") is not None:
                    decision["sticky_rejection_message"] = record["stickyRejectMessage"]
                if record["approved"] is True or record["rejected"] is True:
                    decision["sticky_scope"] = python_tool_scope(tool)
                converted.append({"agent": {"name": agent}, "tool_key": tool, "decision": decision})
        return converted

    def _bound_invocations(self) -> dict[tuple[str, str], str]:
        bound = {}
        for entry in as_list(self.context.get("approvalInvocations", []), "approvalInvocations"):
            entry = as_dict(entry, "approval invocations")
            require_absent_or(entry, "approvals", [{}], "per-invocation approvals of hosted tools")
            for call_id, fingerprint in as_dict(entry["invocations"], "invocations").items():
                bound[(entry["agentIdentity"], call_id)] = fingerprint
        return bound

    def _tool_invocations(self) -> dict[str, dict[str, Any]]:
        """The Python ledger of every tool and handoff call: identity, and whether it completed."""
        answered = {
            (item.get("agent", item.get("sourceAgent", {})).get("name"), item["rawItem"]["callId"])
            for item in self.generated
            if item["type"] in ("tool_call_output_item", "handoff_output_item")
        }
        handoffs = {
            (item["agent"]["name"], item["rawItem"]["callId"])
            for item in self.generated
            if item["type"] == "handoff_call_item"
        }
        ledger: dict[str, dict[str, Any]] = {}
        for (agent, call_id), call in self.calls.items():
            scope, fingerprint = python_invocation(call, handoff=(agent, call_id) in handoffs)
            done = (agent, call_id) in answered
            ledger[call_id] = {
                "type": "function_call",
                "approval_scope": scope,
                "fingerprint": fingerprint,
                "executed": done,
                "completed": done,
            }
        return ledger

    # ----- items ----------------------------------------------------------------------------

    def _item(self, item: dict[str, Any]) -> dict[str, Any]:
        kind = item["type"]
        raw = items.item_to_python(item["rawItem"])
        if kind == "handoff_output_item":
            refuse_unknown_keys(item, ("type", "rawItem", "sourceAgent", "targetAgent"), kind)
            source, target = (
                items.agent_reference(item["sourceAgent"]),
                items.agent_reference(item["targetAgent"]),
            )
            if raw["output"] == items.typescript_transfer_message(target["name"]):
                raw["output"] = items.python_transfer_message(target["name"])
            return {
                "type": kind,
                "raw_item": raw,
                "agent": source,
                "source_agent": source,
                "target_agent": target,
            }
        agent = items.agent_reference(item["agent"])
        if kind in ("message_output_item", "handoff_call_item"):
            refuse_unknown_keys(item, ("type", "rawItem", "agent"), kind)
            return {"type": kind, "raw_item": raw, "agent": agent}
        if kind == "tool_call_item":
            refuse_unknown_keys(item, ("type", "rawItem", "agent", "functionToolStateKey"), kind)
            _check_state_key(item, raw["name"])
            converted = {"type": kind, "raw_item": raw, "agent": agent, "tool_name": raw["name"]}
            if raw["name"] in self.descriptions:
                converted["description"] = self.descriptions[raw["name"]]
            return {**converted, "tool_origin": _FUNCTION_ORIGIN}
        if kind == "tool_call_output_item":
            refuse_unknown_keys(item, ("type", "rawItem", "agent", "output", "executionStatus"), kind)
            return {
                "type": kind,
                "raw_item": raw,
                "agent": agent,
                "output": item["output"],
                "tool_origin": _FUNCTION_ORIGIN,
            }
        if kind == "tool_approval_item":
            refuse_unknown_keys(item, ("type", "rawItem", "agent", "toolName", "functionToolStateKey"), kind)
            _check_state_key(item, raw["name"])
            return {
                "type": kind,
                "raw_item": raw,
                "agent": agent,
                "tool_name": item.get("toolName", raw["name"]),
                "tool_lookup_key": {"kind": "bare", "name": raw["name"]},
                "tool_origin": _FUNCTION_ORIGIN,
            }
        raise Unsupported(f"{kind} run items")

    def _processed_response(self, processed: Any, interruptions: list[dict[str, Any]]) -> dict[str, Any]:
        processed = as_dict(processed, "lastProcessedResponse")
        refuse_unknown_keys(
            processed, ("newItems", "toolsUsed", "functions", *_EMPTY_ACTIONS), "lastProcessedResponse"
        )
        for key in _EMPTY_ACTIONS:
            require_absent_or(
                processed, key, [[]], "computer, shell, patch, MCP, missing-tool or pending handoff actions"
            )
        functions = []
        for entry in as_list(processed["functions"], "functions"):
            entry = as_dict(entry, "function action")
            refuse_unknown_keys(entry, ("toolCall", "tool", "mcpToolBinding"), "function action")
            if entry.get("mcpToolBinding", "unknown") is not None:
                raise Unsupported("MCP tools or tool calls of unknown provenance (mcpToolBinding)")
            tool = as_dict(entry["tool"], "function tool")
            name = tool["name"]
            functions.append(
                {
                    "tool_call": items.item_to_python(entry["toolCall"]),
                    "tool": {
                        "name": name,
                        "lookupKey": {"kind": "bare", "name": name},
                        "description": tool.get("description", ""),
                        "paramsJsonSchema": tool.get("parameters", {}),
                    },
                }
            )
        return {
            "new_items": [self._item(as_dict(item, "run item")) for item in processed["newItems"]],
            "tools_used": processed["toolsUsed"],
            "functions": functions,
            "computer_actions": [],
            "custom_tool_actions": [],
            "local_shell_actions": [],
            "shell_actions": [],
            "apply_patch_actions": [],
            "handoffs": [],
            "mcp_approval_requests": [],
            "interruptions": interruptions,
            "mcp_tool_bindings": {},
        }


def _call_key(item: dict[str, Any]) -> tuple[str, str]:
    """(agent, call id) of a converted (Python) run item."""
    return item["agent"]["name"], item["raw_item"]["call_id"]


def _bare_tool_name(state_key: str) -> str:
    """The tool name of a '["bare","send_email"]' state key."""
    try:
        kind, name = json.loads(state_key)
    except (ValueError, TypeError) as error:
        raise Unsupported(f"tool approval key {state_key!r}") from error
    if kind != "bare" or not isinstance(name, str):
        raise Unsupported(f"approvals of namespaced or deferred tools ({state_key})")
    return name


def _check_state_key(item: dict[str, Any], name: str) -> None:
    if item.get("functionToolStateKey", typescript_tool_state_key(name)) != typescript_tool_state_key(name):
        raise Unsupported(
            f"namespaced or deferred tools (functionToolStateKey {item['functionToolStateKey']})"
        )
