"""kitaru's MCP server: tools for coding agents over `KitaruClient` (Kitaru 0.21's names).

`kitaru.mcp.server` holds the tools as plain functions (importable without the `mcp`
package); `kitaru-mcp` serves them over stdio (`pip install 'kitaru[mcp]'`), and the
kitaru server serves them over streamable HTTP at `/mcp`. See docs/mcp.md.
"""
