"""``/mcp``: the Model Context Protocol for agents, on the gateway's own port and pipeline."""
