"""A streamable-HTTP MCP server written with the official `mcp` Python SDK, for the engine's MCP
tests: one tool, `add`. Usage: python3 http_server.py PORT (serves http://127.0.0.1:PORT/mcp)."""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("oy3o-test-http")


@server.tool()
def add(a: int, b: int) -> str:
    """Adds two integers."""
    return str(a + b)


if __name__ == "__main__":
    server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
