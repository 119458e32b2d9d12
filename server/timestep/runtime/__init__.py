"""The agent runtime: the Agents SDK Runner, the agent registry, model providers, tools."""
