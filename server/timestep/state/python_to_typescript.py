"""Python RunState (openai-agents 0.24.0, schema 1.21) → TypeScript RunState (@openai/agents
0.20.0, schema 1.22), for a run paused on tool approvals.

The result is what the TypeScript SDK itself writes for the same run (Python → TypeScript):

- snake_case top level (`current_turn`, …) → camelCase (`currentTurn`, …)
- run items (`raw_item`, `tool_name`, `tool_lookup_key`) → (`rawItem`, `toolName`,
  `functionToolStateKey`); their raw items as in `items`
- a handoff output's text `{"assistant": "billing"}` (the SDK's own wording) → the TypeScript
  SDK's wording `{"assistant":"billing"}`, as the other SDK would have written it
- `context.function_tool_approvals` (per agent and tool) → `context.functionApprovals`, plus
  `approvalInvocations` binding each per-call decision to its call's fingerprint
- calls answered in the history → `completedToolInvocations` and their evidence (the call, or
  its approval item from an earlier pause, and the output)
- `current_turn_persisted_item_count` (this turn's items saved to the session, approval items
  not counted) → `currentTurnPersistedItemCount` (index into `generatedItems`)
- `last_processed_response.functions[].tool` → `{type: "function", name, description,
  parameters}` with `mcpToolBinding: null` (a local tool)
- `context.context` (a JSON object or null) → `context.context` (`{}` for null)
- `trace` → `null`: the run continues in a new trace

Python does not record, so the result leaves out: `modelResponses[].providerData` (the raw API
response), usage `endpoint`s, `currentTurnSessionInputItems` (only used when a run paused
without a session resumes with one). Python's `tool_use_tracker` lists every tool use;
TypeScript keeps each tool once (the SDKs only ask whether an agent used tools).

Longer than the service's ~450-line modules on purpose: this is one direction of one conversion,
its steps share the conversion being built and are read top to bottom against the other SDK's
format; split, each half would reach into the other's private helpers.
"""

from __future__ import annotations

from typing import Any

from timestep.state import items
from timestep.state.document import SCHEMA_VERSIONS, TYPESCRIPT
from timestep.state.fingerprints import (
    typescript_handoff_name,
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

_EMPTY_LISTS = {
    "pending_input": "input added to the paused run",
    "input_guardrail_results": "input guardrail results",
    "output_guardrail_results": "output guardrail results",
    "tool_input_guardrail_results": "tool input guardrail results",
    "tool_output_guardrail_results": "tool output guardrail results",
    "nested_history_owned_session_item_refs": "session history owned by an agent used as a tool",
}
_NULLS = {
    "conversation_id": "a server-managed conversation",
    "previous_response_id": "a server-managed conversation",
    "generated_prompt_cache_key": "a generated prompt cache key",
    "reasoning_item_id_policy": "a reasoning item id policy",
}
_ABSENT = {
    "pending_session_write": "an unfinished session write",
    "terminal_unrecoverable": "a run marked unrecoverable",
    "sandbox": "a sandbox session",
}
_KNOWN = (
    "$schemaVersion",
    "current_turn",
    "current_agent",
    "original_input",
    "model_responses",
    "context",
    "tool_use_tracker",
    "max_turns",
    "no_active_agent_run",
    "auto_previous_response_id",
    "generated_session_item_indexes",
    "current_response_generated_item_ownership",
    "generated_items",
    "session_items",
    "current_step",
    "last_model_response",
    "last_processed_response",
    "current_turn_persisted_item_count",
    "trace",
    *_EMPTY_LISTS,
    *_NULLS,
    *_ABSENT,
)
_EMPTY_ACTIONS = (
    "computer_actions",
    "custom_tool_actions",
    "local_shell_actions",
    "shell_actions",
    "apply_patch_actions",
    "handoffs",
    "mcp_approval_requests",
)


def to_typescript(state: dict[str, Any]) -> dict[str, Any]:
    """The TypeScript RunState JSON object for a paused Python RunState JSON object."""
    _check_top_level(state)
    return _Conversion(state).state()


def _check_top_level(state: dict[str, Any]) -> None:
    for key, construct in _ABSENT.items():
        if key in state:
            raise Unsupported(f"{construct} ({key})")
    refuse_unknown_keys(state, _KNOWN, "top-level")
    for key, construct in _EMPTY_LISTS.items():
        require_absent_or(state, key, [[]], construct)
    for key, construct in _NULLS.items():
        require_absent_or(state, key, [None], construct)
    require_absent_or(state, "auto_previous_response_id", [False], "a server-managed conversation")
    step = as_dict(state.get("current_step"), "current_step") if state.get("current_step") else {}
    if step.get("type") != "next_step_interruption":
        raise Unsupported("a run that is not paused on tool approvals (current_step)")
    data = as_dict(step["data"], "current_step data")
    refuse_unknown_keys(
        data, ("interruptions", "response_accepted", "llm_end_hooks_started"), "current_step data"
    )
    if data.get("response_accepted") is not False or data.get("llm_end_hooks_started") is not True:
        raise Unsupported("an interruption raised after the model response was accepted")


class _Conversion:
    def __init__(self, state: dict[str, Any]) -> None:
        self.source = state
        self.generated: list[dict[str, Any]] = [
            as_dict(item, "run item") for item in state["generated_items"]
        ]
        self.context = as_dict(state["context"], "context")
        self.decisions = self._decisions()
        self.call_names = {call["call_id"]: call["name"] for call in self._function_calls()}
        self.answered_approvals = self._answered_approvals()

    # ----- top level ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        s = self.source
        model_responses = [
            self._model_response(response) for response in as_list(s["model_responses"], "model_responses")
        ]
        converted: dict[str, Any] = {
            "$schemaVersion": SCHEMA_VERSIONS[TYPESCRIPT],
            "currentTurn": s["current_turn"],
            "currentAgent": items.agent_reference(s["current_agent"]),
            "originalInput": self._input(s["original_input"]),
            "modelResponses": model_responses,
            "context": self._context(),
            "toolUseTracker": {
                agent: list(dict.fromkeys(tools)) for agent, tools in s["tool_use_tracker"].items()
            },
            "maxTurns": s["max_turns"],
            "currentAgentSpan": None,
            "noActiveAgentRun": False,
            "inputGuardrailResults": [],
            "initialInputGuardrailsCompleted": True,
            "outputGuardrailResults": [],
            "toolInputGuardrailResults": [],
            "toolOutputGuardrailResults": [],
            "currentTurnInProgress": True,
            "currentStep": {
                "type": "next_step_interruption",
                "data": {
                    "interruptions": [self._item(i) for i in s["current_step"]["data"]["interruptions"]]
                },
            },
        }
        if model_responses:
            converted["lastModelResponse"] = model_responses[-1]
        converted["generatedItems"] = [self._item(item) for item in self.generated]
        ownership = s.get("current_response_generated_item_ownership")
        if ownership is not None:
            converted["currentResponseGeneratedItemOwnership"] = {
                "generatedItemStartIndex": ownership["start"],
                "generatedItemEndIndexExclusive": ownership["end"],
                "interruptionGeneratedItemIndexes": ownership["interruptions"],
                "toolOutputGuardrailResultStartIndex": 0,
            }
        converted["pendingAgentToolRuns"] = {}
        converted["pendingAgentToolRunAliases"] = {}
        if s.get("last_processed_response") is not None:
            converted["lastProcessedResponse"] = self._processed_response(s["last_processed_response"])
        converted["currentTurnPersistedItemCount"] = self._persisted_count(ownership)
        completed, evidence = self._completed_invocations()
        converted["completedToolInvocations"] = completed
        converted["completedToolInvocationEvidence"] = evidence
        converted["ambiguousToolInvocationCallIds"] = []
        converted["trace"] = None
        return converted

    def _input(self, value: Any) -> str | list[dict[str, Any]]:
        if isinstance(value, str):
            return value
        return [items.item_to_typescript(item, self.call_names) for item in as_list(value, "original_input")]

    def _model_response(self, response: Any) -> dict[str, Any]:
        response = as_dict(response, "model response")
        refuse_unknown_keys(response, ("usage", "output", "response_id", "request_id"), "model response")
        converted: dict[str, Any] = {
            "usage": items.usage_to_typescript(response["usage"], one_response=True),
            "output": [items.item_to_typescript(item, self.call_names) for item in response["output"]],
        }
        for key, target in (("response_id", "responseId"), ("request_id", "requestId")):
            if response.get(key) is not None:
                converted[target] = response[key]
        return converted

    def _persisted_count(self, ownership: dict[str, Any] | None) -> int:
        """Python counts the items of the current turn it saved to the session, approval items
        not included; TypeScript stores the index in `generatedItems` up to which it saved."""
        saved = self.source["current_turn_persisted_item_count"]
        if saved == 0:
            return 0
        index = ownership["start"] if ownership else 0
        while saved and index < len(self.generated):
            saved -= self.generated[index]["type"] != "tool_approval_item"
            index += 1
        while index < len(self.generated) and self.generated[index]["type"] == "tool_approval_item":
            index += 1
        if saved:
            raise Unsupported("a session-saved item count beyond the run's items")
        return index

    def _answered_approvals(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The approval items of calls decided at an earlier pause, by (agent, call id).

        Python keeps them in `session_items` only (the generated items then hold the call and
        its output); TypeScript keeps them as the call's completion evidence. Any other
        difference between session and generated items (e.g. a handoff input filter) is refused.
        """
        session = as_list(self.source.get("session_items", self.generated), "session_items")
        indexes = self.source.get("generated_session_item_indexes", list(range(len(self.generated))))
        answered = {
            (item["agent"]["name"], item["raw_item"]["call_id"])
            for item in self.generated
            if item["type"] == "tool_call_output_item"
        }
        extra = [session[i] for i in range(len(session)) if i not in set(indexes)]
        if (
            len(indexes) != len(self.generated)
            or indexes != sorted(set(indexes))
            or any(session[j] != item for j, item in zip(indexes, self.generated, strict=True))
            or any(
                item.get("type") != "tool_approval_item"
                or (item["agent"]["name"], item["raw_item"]["call_id"]) not in answered
                for item in extra
            )
        ):
            raise Unsupported(
                "session items that differ from the generated items (e.g. after a handoff input filter)"
            )
        return {(item["agent"]["name"], item["raw_item"]["call_id"]): item for item in extra}

    # ----- context and approvals ------------------------------------------------------------

    def _context(self) -> dict[str, Any]:
        c = self.context
        refuse_unknown_keys(
            c,
            ("usage", "approvals", "tool_invocations", "context", "context_meta", "function_tool_approvals"),
            "context",
        )
        require_absent_or(c, "approvals", [{}], "approval records of hosted tools or legacy form")
        meta = as_dict(c.get("context_meta", {}), "context_meta")
        if (
            meta.get("serialized_via", "mapping") not in ("mapping", "none")
            or meta.get("omitted")
            or meta.get("requires_deserializer")
        ):
            raise Unsupported(
                f"a context that is not a plain JSON object (a {meta.get('original_type', 'custom')} "
                "serialized with a custom serializer)"
            )
        converted: dict[str, Any] = {
            "usage": items.usage_to_typescript(c["usage"], one_response=False),
            "approvals": {},
        }
        approvals, invocations = self._approvals()
        if approvals:
            converted["functionApprovals"] = approvals
        converted["approvalInvocations"] = invocations
        converted["context"] = c.get("context") if c.get("context") is not None else {}
        return converted

    def _decisions(self) -> list[tuple[str, str, dict[str, Any]]]:
        """`(agent, tool name, decision)` of every function tool decision, in recorded order."""
        decisions = []
        for entry in as_list(self.context.get("function_tool_approvals", []), "function_tool_approvals"):
            entry = as_dict(entry, "function tool approval")
            refuse_unknown_keys(entry, ("agent", "tool_key", "decision"), "function tool approval")
            decision = as_dict(entry["decision"], "approval decision")
            refuse_unknown_keys(
                decision,
                ("approved", "rejected", "rejection_messages", "sticky_rejection_message", "sticky_scope"),
                "approval decision",
            )
            decisions.append((items.agent_reference(entry["agent"])["name"], entry["tool_key"], decision))
        return decisions

    def _approvals(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """TypeScript `functionApprovals` and the `approvalInvocations` binding each decided call."""
        approvals: dict[str, dict[str, Any]] = {}
        invocations: dict[str, dict[str, str]] = {}
        calls = {(call["agent"], call["call_id"]): call for call in self._function_calls()}
        pending = [
            (i["agent"]["name"], i["raw_item"]) for i in self.generated if i["type"] == "tool_approval_item"
        ]
        for agent, tool, decision in self.decisions:
            if not any(call["name"] == tool for (owner, _), call in calls.items() if owner == agent):
                raise Unsupported(
                    f"a decision on tool {tool!r}, which agent {agent!r} never called in this run"
                )
            record: dict[str, Any] = {"approved": decision["approved"], "rejected": decision["rejected"]}
            if decision.get("rejection_messages"):
                record["messages"] = decision["rejection_messages"]
            if decision.get("sticky_rejection_message") is not None:
                record["stickyRejectMessage"] = decision["sticky_rejection_message"]
            approvals.setdefault(agent, {})[typescript_tool_state_key(tool)] = record
            bound = [
                call_id
                for key in ("approved", "rejected")
                if isinstance(decision[key], list)
                for call_id in decision[key]
            ]
            # A tool-wide ("always") decision was made on the pending call(s) it was asked for.
            if decision["approved"] is True or decision["rejected"] is True:
                bound += [
                    call["call_id"] for owner, call in pending if owner == agent and call["name"] == tool
                ]
            for call_id in bound:
                call = calls.get((agent, call_id))
                if call is None:
                    raise Unsupported(f"a decision on call {call_id!r}, whose tool call is not in the state")
                invocations.setdefault(agent, {})[call_id] = typescript_invocation(
                    typescript_tool_state_key(tool), call["arguments"]
                )
        return (
            [{"agentIdentity": agent, "approvals": records} for agent, records in approvals.items()],
            [
                {"agentIdentity": agent, "invocations": by_call, "approvals": {}}
                for agent, by_call in invocations.items()
            ],
        )

    def _rejected(self, agent: str, tool: str, call_id: str) -> bool:
        """Whether a recorded tool output answered a rejection (rather than the tool's execution)."""
        for owner, key, decision in self.decisions:
            if (owner, key) != (agent, tool):
                continue
            approved, rejected = decision["approved"], decision["rejected"]
            if isinstance(rejected, list) and call_id in rejected:
                return True
            if rejected is True and not (
                approved is True or (isinstance(approved, list) and call_id in approved)
            ):
                return True
        return False

    def _completed_invocations(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every tool or handoff call with its output in the history, with the indexes of both."""
        completed: dict[str, dict[str, str]] = {}
        evidence: dict[str, dict[str, Any]] = {}
        call_indexes: dict[tuple[str, str], int] = {}
        for index, item in enumerate(self.generated):
            agent = item["agent"]["name"]
            if item["type"] in ("tool_call_item", "handoff_call_item"):
                call_indexes[(agent, item["raw_item"]["call_id"])] = index
            if item["type"] not in ("tool_call_output_item", "handoff_output_item"):
                continue
            call_id = item["raw_item"]["call_id"]
            call_index = call_indexes.get((agent, call_id))
            if call_index is None:
                raise Unsupported(f"an output for call {call_id!r} whose call is not in the generated items")
            call = self.generated[call_index]
            name = call["raw_item"]["name"]
            tool = (
                typescript_handoff_name(name)
                if call["type"] == "handoff_call_item"
                else typescript_tool_state_key(name)
            )
            fingerprint = typescript_invocation(tool, call["raw_item"]["arguments"])
            approval = self.answered_approvals.get((agent, call_id))
            first = {"item": self._item(approval)} if approval else {"generatedItemIndex": call_index}
            completed.setdefault(agent, {})[call_id] = fingerprint
            evidence.setdefault(agent, {})[call_id] = {
                "fingerprint": fingerprint,
                "items": [first, {"generatedItemIndex": index}],
            }
        return (
            [{"agentIdentity": agent, "invocations": by_call} for agent, by_call in completed.items()],
            [{"agentIdentity": agent, "invocations": by_call} for agent, by_call in evidence.items()],
        )

    # ----- items ----------------------------------------------------------------------------

    def _function_calls(self) -> list[dict[str, Any]]:
        """Every function_call item of the state, with the agent that made it (None for input)."""
        calls = []
        for item in self.generated:
            raw = item.get("raw_item")
            if isinstance(raw, dict) and raw.get("type") == "function_call":
                calls.append({**raw, "agent": item["agent"]["name"]})
        sources = [as_list(r.get("output", []), "model output") for r in self.source["model_responses"]]
        if isinstance(self.source["original_input"], list):
            sources.append(self.source["original_input"])
        for source in sources:
            calls += [
                {**raw, "agent": None}
                for raw in source
                if isinstance(raw, dict) and raw.get("type") == "function_call"
            ]
        return calls

    def _item(self, item: dict[str, Any]) -> dict[str, Any]:
        kind = item["type"]
        raw = items.item_to_typescript(item["raw_item"], self.call_names)
        agent = items.agent_reference(item["agent"])
        origin = item.get("tool_origin", {"type": "function"})
        if origin != {"type": "function"}:
            raise Unsupported(f"tools of origin {origin.get('type')!r} (e.g. MCP servers or agents as tools)")
        if kind in ("message_output_item", "tool_call_item", "handoff_call_item"):
            refuse_unknown_keys(
                item, ("type", "raw_item", "agent", "tool_name", "description", "tool_origin"), kind
            )
            return {"type": kind, "rawItem": raw, "agent": agent}
        if kind == "tool_call_output_item":
            refuse_unknown_keys(item, ("type", "raw_item", "agent", "output", "tool_origin"), kind)
            converted = {"type": kind, "rawItem": raw, "agent": agent, "output": item["output"]}
            if not self._rejected(agent["name"], raw["name"], raw["callId"]):
                converted["executionStatus"] = "executed"
            return converted
        if kind == "tool_approval_item":
            refuse_unknown_keys(
                item, ("type", "raw_item", "agent", "tool_name", "tool_lookup_key", "tool_origin"), kind
            )
            lookup = item.get("tool_lookup_key")
            if lookup != {"kind": "bare", "name": raw["name"]}:
                raise Unsupported(f"approvals of namespaced or deferred tools (tool_lookup_key {lookup})")
            return {
                "type": kind,
                "rawItem": raw,
                "agent": agent,
                "toolName": item.get("tool_name", raw["name"]),
                "functionToolStateKey": typescript_tool_state_key(raw["name"]),
            }
        if kind == "handoff_output_item":
            refuse_unknown_keys(item, ("type", "raw_item", "agent", "source_agent", "target_agent"), kind)
            target = items.agent_reference(item["target_agent"])
            output = raw["output"]
            if output["text"] == items.python_transfer_message(target["name"]):
                output["text"] = items.typescript_transfer_message(target["name"])
            return {
                "type": kind,
                "rawItem": raw,
                "sourceAgent": items.agent_reference(item["source_agent"]),
                "targetAgent": target,
            }
        raise Unsupported(f"{kind} run items")

    def _processed_response(self, processed: Any) -> dict[str, Any]:
        processed = as_dict(processed, "last_processed_response")
        refuse_unknown_keys(
            processed,
            ("new_items", "tools_used", "functions", "interruptions", "mcp_tool_bindings", *_EMPTY_ACTIONS),
            "last_processed_response",
        )
        for key in _EMPTY_ACTIONS:
            require_absent_or(processed, key, [[]], "computer, shell, patch, MCP or pending handoff actions")
        require_absent_or(processed, "mcp_tool_bindings", [{}], "MCP tool bindings")
        functions = []
        for entry in as_list(processed["functions"], "functions"):
            entry = as_dict(entry, "function action")
            refuse_unknown_keys(
                entry, ("tool_call", "tool"), "function action (e.g. an agent used as a tool)"
            )
            tool = as_dict(entry["tool"], "function tool")
            refuse_unknown_keys(
                tool, ("name", "lookupKey", "description", "paramsJsonSchema"), "function tool"
            )
            if tool.get("lookupKey", {"kind": "bare"}).get("kind") != "bare":
                raise Unsupported(f"namespaced or deferred tools (lookupKey {tool['lookupKey']})")
            functions.append(
                {
                    "toolCall": items.item_to_typescript(entry["tool_call"], self.call_names),
                    "tool": {
                        "type": "function",
                        "name": tool["name"],
                        "description": tool.get("description", ""),
                        "parameters": tool.get("paramsJsonSchema", {}),
                    },
                    "mcpToolBinding": None,
                }
            )
        return {
            "newItems": [self._item(as_dict(item, "run item")) for item in processed["new_items"]],
            "toolsUsed": processed["tools_used"],
            "handoffs": [],
            "functions": functions,
            "functionToolsNotFound": [],
            "computerActions": [],
            "shellActions": [],
            "applyPatchActions": [],
            "mcpApprovalRequests": [],
        }
