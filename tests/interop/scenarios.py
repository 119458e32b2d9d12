"""Runs both SDKs make against the same scripted model, paused (and saved) on tool approvals.

Each `Scenario` is run by the Python SDK in process (`python_state`) and by the TypeScript SDK
(`typescript_state`, via `src/scenarios.ts pause`): the golden vectors in `golden/` are their
states, and the interop tests use the same decisions and model turns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from agents import Runner, RunState, SQLiteSession
from timestep.examples.agents import assistant

from tests.interop.typescript import run_scenario
from timestep_testing.fakes.openai_responses import (
    FakeOpenAI,
    Turn,
    function_call,
    message,
    response,
    tool_call,
    tool_calls,
)
from timestep_testing.helpers import EMAIL_ARGS, in_process_run_config

EVE_ARGS: Final = {**EMAIL_ARGS, "to": "eve@example.com"}
REFUND_ARGS: Final = {"order_id": "A-1001", "amount": 12.5}
CONTEXT: Final = {"user": "ada", "locale": "en-GB", "vip": True}
REJECTION: Final = "Bob is on leave; do not email him."


@dataclass(frozen=True)
class Decision:
    """Approve or reject the pending call `call_id` (`always`: every later call of its tool too)."""

    call_id: str
    approve: bool
    always: bool = False
    message: str | None = None

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"callId": self.call_id, "approve": self.approve, "always": self.always}
        if self.message is not None:
            spec["message"] = self.message
        return spec


def email_bob() -> list[Turn]:
    return [tool_call("send_email", EMAIL_ARGS, call_id="call_bob")]


def email_bob_and_eve() -> list[Turn]:
    return [
        tool_calls(
            function_call("send_email", EMAIL_ARGS, call_id="call_bob"),
            function_call("send_email", EVE_ARGS, call_id="call_eve"),
        )
    ]


def hand_off_then_refund() -> list[Turn]:
    return [
        tool_call("transfer_to_billing", {}, call_id="call_handoff"),
        tool_call("issue_refund", REFUND_ARGS, call_id="call_refund"),
    ]


def weather_then_email() -> list[Turn]:
    return [
        tool_call("get_weather", {"city": "Paris"}, call_id="call_weather"),
        response(
            message("It is sunny in Paris; emailing Bob now."),
            function_call("send_email", EMAIL_ARGS, call_id="call_bob"),
        ),
    ]


def email_bob_then_eve() -> list[Turn]:
    return [
        tool_call("send_email", EMAIL_ARGS, call_id="call_bob"),
        tool_call("send_email", EVE_ARGS, call_id="call_eve"),
    ]


@dataclass(frozen=True)
class Scenario:
    name: str
    turns: Callable[[], list[Turn]]
    """The model's answers up to the (last) pause."""
    input: str = "Tell Bob I'm running late"
    stream: bool = False
    context: dict[str, Any] = field(default_factory=lambda: dict(CONTEXT))
    session_id: str | None = None
    decisions: Sequence[Decision] = ()
    """Made before the state is saved."""
    earlier_decisions: Sequence[Decision] | None = None
    """Made at an earlier pause, after which the run went on to the pause that is saved."""

    def spec(self) -> dict[str, Any]:
        """The `src/scenarios.ts` spec of this scenario."""
        spec: dict[str, Any] = {
            "input": self.input,
            "stream": self.stream,
            "context": self.context,
            "decisions": [d.to_spec() for d in self.decisions],
        }
        if self.session_id is not None:
            spec["sessionId"] = self.session_id
        if self.earlier_decisions is not None:
            spec["earlierDecisions"] = [d.to_spec() for d in self.earlier_decisions]
        return spec


SCENARIOS: Final = [
    Scenario("pending_approval", email_bob),
    Scenario("pending_approval_streamed", email_bob, stream=True),
    Scenario("approved_always_before_saving", email_bob, decisions=[Decision("call_bob", True, always=True)]),
    Scenario(
        "rejected_always_with_message_before_saving",
        email_bob,
        decisions=[Decision("call_bob", False, always=True, message=REJECTION)],
    ),
    Scenario(
        "two_interruptions_one_approved_one_rejected",
        email_bob_and_eve,
        input="Tell Bob and Eve I'm running late",
        decisions=[Decision("call_bob", True), Decision("call_eve", False, message="Eve already knows.")],
    ),
    Scenario(
        "handoff_then_refund_approval", hand_off_then_refund, input="Refund order A-1001, 12.50", stream=True
    ),
    Scenario(
        "tool_and_message_before_approval", weather_then_email, input="Check Paris weather, then tell Bob"
    ),
    Scenario("session", email_bob, session_id="conversation-42"),
    Scenario(
        "second_pause_after_approval", email_bob_then_eve, earlier_decisions=[Decision("call_bob", True)]
    ),
    Scenario(
        "second_pause_after_rejection",
        email_bob_then_eve,
        earlier_decisions=[Decision("call_bob", False, message=REJECTION)],
    ),
]


def decide(state: RunState[Any, Any], decisions: Sequence[Decision]) -> None:
    for decision in decisions:
        [item] = [i for i in state.get_interruptions() if i.call_id == decision.call_id]
        if decision.approve:
            state.approve(item, always_approve=decision.always)
        else:
            state.reject(item, always_reject=decision.always, rejection_message=decision.message)


async def python_state(scenario: Scenario, fake: FakeOpenAI) -> str:
    """The Python SDK's saved state of the scenario's run (the model is `fake`)."""
    fake.script(*scenario.turns())
    session = SQLiteSession(scenario.session_id) if scenario.session_id else None
    steps = (
        [scenario.earlier_decisions, scenario.decisions]
        if scenario.earlier_decisions
        else [scenario.decisions]
    )
    run_input: str | RunState[Any, Any] = scenario.input
    for decisions in steps:
        result = await _run(run_input, scenario, fake, session)
        state = result.to_state()
        decide(state, decisions)
        run_input = state
    assert isinstance(run_input, RunState)
    return run_input.to_string()


async def _run(
    run_input: str | RunState[Any, Any], scenario: Scenario, fake: FakeOpenAI, session: SQLiteSession | None
) -> Any:
    context = scenario.context if isinstance(run_input, str) else None
    options: dict[str, Any] = {"run_config": in_process_run_config(fake), "session": session}
    if not scenario.stream:
        return await Runner.run(assistant, run_input, context=context, **options)
    streamed = Runner.run_streamed(assistant, run_input, context=context, **options)
    async for _ in streamed.stream_events():
        pass
    return streamed


async def typescript_state(scenario: Scenario, fake: FakeOpenAI) -> str:
    """The TypeScript SDK's saved state of the scenario's run (the model is `fake`)."""
    fake.script(*scenario.turns())
    paused = await run_scenario("pause", scenario.spec(), model_url=fake.base_url)
    state: str = paused["state"]
    return state
