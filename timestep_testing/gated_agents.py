"""Agents for the durability tests and the chaos soak, loaded by
`timestep serve --agents timestep_testing.gated_agents:AGENTS` in the server processes they start
(the repository root is on their PYTHONPATH).

`worker`'s tools are slow on purpose, so that a test can kill the server while one runs. Each
call of one (label L) appends "start <tool> L" to the file named by `TOOL_LOG_ENV`, waits until
the marker file `<TOOL_GATES_ENV>/L` exists, then appends "end <tool> L"; each line is also sent
to the test over the Unix socket named by `TOOL_SOCKET_ENV`, so it can wait for them. The log
file counts executions across processes, which is what at-least-once and exactly-once are about.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Final

from agents import Agent, RunContextWrapper, function_tool, handoff
from agents.tool_context import ToolContext
from timestep import not_idempotent
from timestep.examples.agents import AGENTS as EXAMPLE_AGENTS

# `timestep serve --agents` with this loads `AGENTS`.
AGENTS_OPTION: Final = f"{__name__}:AGENTS"
TOOL_LOG_ENV: Final = "TIMESTEP_TEST_TOOL_LOG"
TOOL_GATES_ENV: Final = "TIMESTEP_TEST_TOOL_GATES"
TOOL_SOCKET_ENV: Final = "TIMESTEP_TEST_TOOL_SOCKET"
# How often a running tool looks for its marker file: the tool's own slowness, not a test wait.
GATE_CHECK_S: Final = 0.02


def _append(line: str) -> None:
    with Path(os.environ[TOOL_LOG_ENV]).open("a", encoding="utf-8") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


async def _announce(line: str) -> None:
    _, writer = await asyncio.open_unix_connection(os.environ[TOOL_SOCKET_ENV])
    writer.write(line.encode() + b"\n")
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def _log(line: str) -> None:
    _append(line)
    await _announce(line)


async def _work(tool: str, label: str) -> str:
    await _log(f"start {tool} {label}")
    gate = Path(os.environ[TOOL_GATES_ENV]) / label
    # The marker file comes from another process: there is no event to await, only the file.
    while not gate.exists():  # noqa: ASYNC110
        await asyncio.sleep(GATE_CHECK_S)
    await _log(f"end {tool} {label}")
    return f"{tool} {label} done"


@function_tool
async def slow_task(label: str) -> str:
    """Do a slow piece of work named `label` (safe to repeat)."""
    return await _work("slow_task", label)


@not_idempotent
@function_tool
async def charge_card(label: str) -> str:
    """Charge a card for order `label` (must not happen twice)."""
    return await _work("charge_card", label)


@function_tool(needs_approval=True)
async def ship_order(label: str) -> str:
    """Ship order `label`; a person approves each shipment first."""
    return await _work("ship_order", label)


def _effect(tool: str, label: str, call_id: str) -> bool:
    """Make the effect of call `call_id` unless it was made: True when this call made it."""
    effects = Path(os.environ[TOOL_LOG_ENV]).parent / "effects"
    effects.mkdir(exist_ok=True)
    try:
        descriptor = os.open(effects / f"{tool}-{label}-{call_id}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.fsync(descriptor)
    os.close(descriptor)
    return True


async def _act(context: RunContextWrapper[Any], tool: str, label: str) -> str:
    assert isinstance(context, ToolContext)
    if _effect(tool, label, context.tool_call_id):
        _append(f"end {tool} {label}")
    return f"{tool} {label} done"


@function_tool
async def soak_work(context: RunContextWrapper[Any], label: str, seconds: float) -> str:
    """Work on `label` for `seconds` seconds (safe to repeat)."""
    _append(f"start soak_work {label}")
    await asyncio.sleep(seconds)  # the work itself takes this long
    return await _act(context, "soak_work", label)


@function_tool(needs_approval=True)
async def soak_ship(context: RunContextWrapper[Any], label: str) -> str:
    """Ship parcel `label`; a person approves each shipment first."""
    _append(f"start soak_ship {label}")
    return await _act(context, "soak_ship", label)


soaker = Agent(
    name="soaker",
    instructions="You work with soak_work and ship parcels with soak_ship.",
    model="gpt-4.1",
    tools=[soak_work, soak_ship],
)

worker = Agent(
    name="worker",
    instructions=(
        "You do slow work with slow_task, charge cards with charge_card and ship orders with ship_order."
    ),
    model="gpt-4.1",
    tools=[slow_task, charge_card, ship_order],
)


@function_tool
async def pack_parcel(label: str) -> str:
    """Pack parcel `label` (safe to repeat)."""
    return await _work("pack_parcel", label)


# Reached only through a `handoff(...)` object, which hides its agent in a closure.
courier = Agent(
    name="courier",
    instructions="You pack parcels with pack_parcel.",
    model="gpt-4.1",
    tools=[pack_parcel],
)
dispatcher = Agent(
    name="dispatcher",
    instructions="You hand parcels over to the courier.",
    model="gpt-4.1",
    handoffs=[handoff(courier)],
)

AGENTS: list[Agent[Any]] = [worker, dispatcher, soaker, *EXAMPLE_AGENTS]
