"""The approval bindings each SDK stores, computed as the SDKs compute them.

The TypeScript expectations (`typescript_fingerprints.json`) were printed by
`getToolInvocationFingerprint` of @openai/agents-core 0.20.0; the Python ones are what
openai-agents 0.24.0 writes for these calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from timestep.state.fingerprints import (
    python_invocation,
    python_tool_scope,
    typescript_handoff_name,
    typescript_invocation,
    typescript_tool_state_key,
)

# `getToolInvocationFingerprint('["bare","t"]', call)` of @openai/agents-core 0.20.0 for these arguments.
TYPESCRIPT_FINGERPRINTS = [
    (case["arguments"], case["fingerprint"])
    for case in json.loads((Path(__file__).parent / "typescript_fingerprints.json").read_text())
]


@pytest.mark.parametrize(("arguments", "expected"), TYPESCRIPT_FINGERPRINTS)
def test_typescript_invocation_fingerprints_match_the_typescript_sdk(arguments: str, expected: str) -> None:
    # Numbers keep their exact digits, strings that look like tagged numbers are escaped,
    # array-index keys sort first and arguments that are not JSON stay raw.
    assert typescript_invocation(typescript_tool_state_key("t"), arguments) == expected


def test_typescript_state_keys_and_handoff_names() -> None:
    assert typescript_tool_state_key("send_email") == '["bare","send_email"]'
    assert typescript_handoff_name("transfer_to_billing") == "handoff:transfer_to_billing"


def test_python_scopes_and_fingerprints_match_the_python_sdk() -> None:
    refund = {
        "arguments": '{"order_id": "A1", "amount": 12.5}',
        "call_id": "call_r",
        "name": "issue_refund",
        "type": "function_call",
    }
    handoff = {"arguments": "{}", "call_id": "call_h", "name": "transfer_to_billing", "type": "function_call"}

    assert (
        python_tool_scope("send_email") == "03c0b69e3d8062f4c5ad4a51305b5ac6f32321871b2433b01ea6025ed2565956"
    )
    assert python_invocation(refund, handoff=False) == (
        "8f21cefd4121e99d01c9f8f37d2213253ca49d74de2ec3421b70fb0e87d4e780",
        "de56bcb0044456fcf4564bddf0aa81fd873a1ee5821fe67b6b8abf1512784d13",
    )
    assert python_invocation(handoff, handoff=True) == (
        "7b37a993c63ff0d0582c23679fd3a2bdeb2ab999469cde9c875343b340ab3eb7",
        "d6e03448026efba55f214867abf7bc0967553c4b63b6b8e6219e304340d8881f",
    )
