"""Example agents that `timestep serve` runs when no other agents are configured."""
