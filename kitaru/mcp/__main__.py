"""`python -m kitaru.mcp`: the same as `kitaru-mcp` (the MCP server over stdio)."""

from kitaru.mcp.server import main

main()
