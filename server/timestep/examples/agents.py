"""The default agents: an assistant with a harmless tool, a tool that needs approval, and a
handoff to a billing agent whose refund tool also needs approval.

`AGENTS` run on OpenAI's gpt-4.1; `LOCAL_AGENTS` are the same agents on the local model, which
the service runs when no OpenAI key or endpoint is configured. A model that small cannot be
trusted to choose a tool, so there the assistant's first turn always calls `send_email` (which
pauses the run for approval); the SDK then resets `tool_choice`, and the turn after the tool
answers in text.

Point `timestep serve --agents your.module:AGENTS` at your own list of `agents.Agent`.
"""

from __future__ import annotations

import os
from typing import Any

from agents import Agent, ModelSettings, function_tool

from timestep.settings import LOCAL_MODEL_ENV, LOCAL_PREFIX, local_model_name

DEFAULT_MODEL = "gpt-4.1"
LOCAL_MODEL = f"{LOCAL_PREFIX}/{local_model_name(os.environ.get(LOCAL_MODEL_ENV, ''))}"


@function_tool
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"The weather in {city} is sunny, 21°C."


@function_tool(needs_approval=True)
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email. A person must approve each email before it is sent."""
    return f"Email to {to} with subject {subject!r} sent."


@function_tool(needs_approval=True)
def issue_refund(order_id: str, amount: float) -> str:
    """Refund an order. A person must approve every refund."""
    return f"Refunded {amount:.2f} for order {order_id}."


def example_agents(model: str, assistant_settings: ModelSettings | None = None) -> list[Agent[Any]]:
    """The assistant and billing agents on `model`."""
    billing = Agent(
        name="billing",
        instructions="You handle billing questions and refunds. Be precise about amounts.",
        model=model,
        tools=[issue_refund],
    )
    assistant = Agent(
        name="assistant",
        instructions=(
            "You are a helpful assistant. Use get_weather for weather questions and send_email to send "
            "emails. Hand billing questions and refunds to the billing agent."
        ),
        model=model,
        model_settings=assistant_settings or ModelSettings(),
        tools=[get_weather, send_email],
        handoffs=[billing],
    )
    return [assistant, billing]


def local_agents(model: str = LOCAL_MODEL) -> list[Agent[Any]]:
    """The example agents on the local model `model`, the assistant's first turn calling send_email."""
    return example_agents(model, ModelSettings(tool_choice="send_email"))


AGENTS: list[Agent[Any]] = example_agents(DEFAULT_MODEL)
assistant, billing = AGENTS
LOCAL_AGENTS: list[Agent[Any]] = local_agents()
