"""Our client as the conformance suite's "client under test" (client mode).

The suite starts a scenario's server, then runs `python conformance_client.py URL` with
MCP_CONFORMANCE_SCENARIO (and MCP_CONFORMANCE_PROTOCOL_VERSION when a revision is asked
for). We connect with groundup's client and do what the scenario expects a client to do:
list the tools and call them (with the arguments the scenario passes in
MCP_CONFORMANCE_CONTEXT, else {"a": 2, "b": 3} as the suite's reference client does).
"""

import json
import os
import sys

from groundup.mcp.client import Client
from groundup.mcp.streamable_http import HttpTransport

scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
version = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION") or None
context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
client = Client("conformance", HttpTransport("conformance", sys.argv[-1]), timeout=20,
                version=version).connect()
try:
    tools = client.list_tools()
    for name, why in client.rejected.items():
        print(f"rejected tool {name}: {why}", file=sys.stderr)
    if scenario == "json-schema-2020-12-preservation":
        focal = next(t for t in tools if t["name"] == "json_schema_2020_12_tool")
        client.call_tool("json_schema_echo", {"schema": focal["inputSchema"]})
    elif context.get("toolCalls"):
        for call in context["toolCalls"]:
            client.call_tool(call["name"], call["arguments"])
    elif scenario in ("initialize", "tools_call", "tools-call") and tools:
        client.call_tool(tools[0]["name"], {"a": 2, "b": 3})
    elif scenario in ("http-standard-headers", "http-invalid-tool-headers"):
        for t in tools:
            client.call_tool(t["name"], {})
finally:
    client.close()
