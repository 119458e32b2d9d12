"""The default agents: an assistant with a harmless tool, a tool that needs approval, and a
handoff to a billing agent whose refund tool also needs approval.

Point `timestep serve --agents your.module:AGENTS` at your own list of `agents.Agent`.
"""

from __future__ import annotations

from typing import Any

from agents import Agent, function_tool

DEFAULT_MODEL = "gpt-4.1"


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


billing = Agent(
    name="billing",
    instructions="You handle billing questions and refunds. Be precise about amounts.",
    model=DEFAULT_MODEL,
    tools=[issue_refund],
)

assistant = Agent(
    name="assistant",
    instructions=(
        "You are a helpful assistant. Use get_weather for weather questions and send_email to send "
        "emails. Hand billing questions and refunds to the billing agent."
    ),
    model=DEFAULT_MODEL,
    tools=[get_weather, send_email],
    handoffs=[billing],
)

AGENTS: list[Agent[Any]] = [assistant, billing]
