"""A server written with the official MCP Python SDK (the test peer our client talks to).

    python sdk_server.py stdio            serve on stdin/stdout
    python sdk_server.py http PORT        serve Streamable HTTP on 127.0.0.1:PORT/mcp
"""

import asyncio
import os
import sys

from pydantic import BaseModel

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

mcp = MCPServer("sdk-test-server")


class Weather(BaseModel):
    city: str
    temperature: float


@mcp.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return f"{a} + {b} = {a + b}"


@mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
def weather(city: str) -> Weather:
    """Weather for a city, as structured content (has an outputSchema)."""
    return Weather(city=city, temperature=21.5)


@mcp.tool()
async def count(steps: int, ctx: Context) -> str:
    """Count to `steps`, reporting progress at each one."""
    for i in range(1, steps + 1):
        await ctx.report_progress(progress=i, total=steps, message=f"step {i}")
        await asyncio.sleep(0.05)
    return f"counted to {steps}"


@mcp.tool()
async def nap(seconds: float) -> str:
    """Sleep, then answer (for timeouts and cancellation)."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        with open(os.environ.get("NAP_LOG", os.devnull), "a") as f:
            f.write("cancelled\n")
        raise
    return f"slept {seconds}"


@mcp.tool()
def die() -> str:
    """Exit the whole server process mid-call."""
    print("about to exit mid-call", file=sys.stderr, flush=True)
    os._exit(3)


@mcp.tool()
def fail(reason: str) -> str:
    """Raise, which the SDK turns into a tool error (isError)."""
    raise ValueError(f"failed on purpose: {reason}")


@mcp.tool(name="lookup.item")
def lookup_dotted(key: str) -> str:
    """Look an item up (a dotted name: it becomes lookup_item in the agent, like the next one)."""
    return f"dotted {key}"


@mcp.tool(name="lookup_item")
def lookup_underscored(key: str) -> str:
    """Look an item up (the underscored twin of lookup.item)."""
    return f"underscored {key}"


@mcp.resource("note://greeting", mime_type="text/plain")
def greeting() -> str:
    """A short text resource."""
    return "hello from the SDK server"


@mcp.prompt()
def review(path: str) -> str:
    """Ask for a review of a file."""
    return f"Please review {path} and list its bugs."


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        mcp.run("stdio")
    else:
        mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
