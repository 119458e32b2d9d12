"""`timestep agents list`."""

from __future__ import annotations

import argparse

from timestep_client import TimestepClient
from timestep_client.v1 import agents_pb2

from timestep.commands.output import OK, Output


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = commands.add_parser("agents", help="the agents the service runs", parents=[common])
    sub = group.add_subparsers(dest="agents_command", required=True, metavar="COMMAND")
    listing = sub.add_parser(
        "list", help="list the agents, their models, default approval timeouts and tools", parents=[common]
    )
    listing.set_defaults(handler=list_agents)


async def list_agents(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    agents = await client.list_agents()
    lines = []
    for agent in agents:
        tools = ", ".join(
            f"{tool.name}{' (needs approval)' if tool.needs_approval else ''}" for tool in agent.tools
        )
        line = f"{agent.name}  model={agent.model or '-'}"
        if agent.HasField("approval_timeout"):  # the agent's default for its runs' interruptions
            line += f"  approval_timeout={agent.approval_timeout.ToTimedelta().total_seconds():g}s"
        line += f"  tools: {tools or '-'}"
        if agent.handoffs:
            line += f"  handoffs: {', '.join(agent.handoffs)}"
        lines.append(line)
    output.result(agents_pb2.ListAgentsResponse(agents=agents), "\n".join(lines) or "no agents")
    return OK
