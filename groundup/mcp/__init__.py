"""MCP, the Model Context Protocol: how an agent takes tools from other programs.

Lower half (below the agent; never imports it):
    jsonrpc.py          the JSON-RPC 2.0 envelope and error codes
    protocol.py         the revisions (2026-07-28 stateless, 2025-11-25 sessions) and their fields
    stdio.py            the stdio transport (a child process, newline-delimited JSON)
    streamable_http.py  the Streamable HTTP transport (POST, JSON or SSE, mirrored headers)
    client.py           one connection: negotiation, requests, timeouts, cancellation, progress
    config.py           .mcp.json and "mcpServers" in the settings

Upper half (above the agent: it serves the agent's tools):
    server.py           McpServer, both eras, and the stdio loop
    http_server.py      the HTTP endpoint: Host/Origin, bearer token, header checks, sessions
    cli.py              `groundup mcp serve|add|list|remove|tools|call`

The agent's side is agent/mcp_tools.py (servers as a ToolSource). Walkthrough: docs/09-mcp.md.
"""
