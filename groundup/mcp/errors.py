"""The local failures of MCP: what goes wrong on *our* side of a connection.

A server's own error answer is a JSON-RPC error (`jsonrpc.RPCError`, with the code the server
chose); everything else -- the server did not start, died, timed out, sent junk, answered an HTTP
status we cannot use -- is an `McpError` whose message names the server and says what to do. Both
transports (stdio and Streamable HTTP) and the client raise these, so they live apart from any one
transport.
"""

from __future__ import annotations


class McpError(Exception):
    """A local failure talking to a server (it did not start, died, timed out, sent junk);
    the message names the server and says what to do."""
