"""The two servers bench/mcp.py compares, each with one trivial tool `echo(text)`:

    python bench/mcp_echo_server.py ours    groundup's McpServer (serve_stdio)
    python bench/mcp_echo_server.py sdk     the official SDK's MCPServer
"""

import sys
from pathlib import Path

# bench/ holds mcp.py, which would shadow the SDK's `mcp` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

if sys.argv[1] == "ours":
    import tempfile

    from groundup.agent.tools import ToolResult
    from groundup.mcp.server import McpServer, serve_stdio

    class Echo:
        def schemas(self):
            return [{"name": "echo", "description": "Echo the text.",
                     "parameters": {"type": "object", "properties": {"text": {"type": "string"}},
                                    "required": ["text"]}}]

        def is_read_only(self, name):
            return True

        def call(self, name, args):
            return ToolResult(args["text"])

    serve_stdio(McpServer(tempfile.mkdtemp(), sources=[Echo()]))
else:
    from mcp.server.mcpserver import MCPServer

    mcp = MCPServer("echo")

    @mcp.tool()
    def echo(text: str) -> str:
        """Echo the text."""
        return text

    mcp.run("stdio")
