"""A stdio MCP server written with the official `mcp` Python SDK that dies on demand, for the
engine's MCP tests: `pid` answers with its process id, `die` exits the process in the middle of
the call, `sleep` takes its time. It also writes noise to stderr, which the client must capture,
not show. With DYING_AT_START set it fails before the handshake."""

import os
import sys

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("oy3o-test-dying")


@server.tool()
def pid() -> str:
    """Answers with this server's process id."""
    print("stderr noise from the dying server", file=sys.stderr, flush=True)
    return str(os.getpid())


@server.tool()
def die() -> str:
    """Exits the process before answering."""
    print("dying now, token=" + os.environ.get("DYING_TOKEN", ""), file=sys.stderr, flush=True)
    os._exit(3)


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleeps (without holding up other calls), then says so."""
    await anyio.sleep(seconds)
    return "slept"


if __name__ == "__main__":
    print("stderr noise at start", file=sys.stderr, flush=True)
    if os.environ.get("DYING_AT_START"):
        print("cannot start: secret " + os.environ.get("DYING_TOKEN", ""), file=sys.stderr, flush=True)
        sys.exit(2)
    server.run()
