"""MCP servers as agent tools: the `ToolSource` that turns each connected server's tools
into tool definitions the model sees, and their results into text it can read.

    .mcp.json {"mcpServers": {"files": {...}}}   ──connect──▶  Client("files")  tools/list
    model sees  mcp__files__read_text  {description, parameters = the tool's inputSchema}
    model calls mcp__files__read_text {"path": "a.txt"}
        ──▶ Toolbox: schema check, permissions (mcp__files__* rules)  ──▶  tools/call
        ◀── {"content": [{"type": "text", ...}], "structuredContent": ..., "isError": ...}
    model reads "hello" (text blocks; structured content as JSON when there is no text;
                 images, audio and resource links described in a line)

Design choices:
- Servers connect in parallel when the agent starts; one that fails is reported (which
  server, and why) and left out, and the others work. A call to a server that died restarts
  it; a timeout cancels the call on the server; every failure is a tool error the model
  reads, and the run goes on.
- Names are `mcp__SERVER__TOOL` (as in Claude Code), cut to the 64 characters and the
  [A-Za-z0-9_-] alphabet that the Anthropic and OpenAI APIs accept for tool names. Two tools
  that come out as one name (`get.item` and `get_item`, or two long names cut at 64) stay
  apart: the later one gets a short hash of its server and original name, the same every run
  (so a permission rule naming it keeps working).
- A tool's `readOnlyHint` is only a hint from someone else's code: it makes the tool run
  without asking (and in parallel) only when the user listed the server in the settings'
  `mcp_trust_read_only`. A server's description can say anything, so it stays in its tool
  definition and never enters the system prompt (prompt.py) or the permission rules.
- Output is capped like the core tools' (READ_MAX_CHARS), with a note saying so.
- Resources: `list_mcp_resources` and `read_mcp_resource` tools, and `@SERVER:URI` in a
  prompt attaches a resource's text (expand_mentions). Prompts: get_prompt, used by the
  interactive mode's `/mcp__SERVER__PROMPT`.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import re
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from groundup.agent.tools import READ_MAX_CHARS, ToolError, ToolResult
from groundup.mcp.client import Client
from groundup.mcp.config import ServerConfig
from groundup.mcp.jsonrpc import RPCError
from groundup.mcp.errors import McpError
from groundup.mcp.stdio import StdioTransport
from groundup.mcp.streamable_http import HttpTransport

CONNECT_TIMEOUT = 30.0
MAX_DESCRIPTION = 2000
RESOURCE_TOOLS = ("list_mcp_resources", "read_mcp_resource")
MENTION = re.compile(r"@([A-Za-z0-9_-]+):(\S+)")


def tool_name(server: str, tool: str) -> str:
    return ("mcp__" + server + "__" + re.sub(r"[^A-Za-z0-9_-]", "_", tool))[:64]


def distinct_name(taken: dict[str, Any], server: str, tool: str) -> str:
    """tool_name, or -- when another tool already has that name -- one with a hash suffix."""
    name = tool_name(server, tool)
    if name not in taken:
        return name
    return name[:55] + "_" + hashlib.sha1(f"{server}\0{tool}".encode()).hexdigest()[:8]


def make_client(cfg: ServerConfig, cwd: str | None = None, **kw: Any) -> Client:
    if cfg.transport == "http":
        transport: Any = HttpTransport(cfg.name, cfg.url or "", cfg.headers)
    else:
        transport = StdioTransport(cfg.name, cfg.command or "", cfg.args, cfg.env, cwd)
    return Client(cfg.name, transport, timeout=cfg.timeout, **kw)


def render_result(result: dict[str, Any]) -> str:
    """A CallToolResult (or prompt/resource content) as text for the model."""
    parts: list[str] = []
    for block in result.get("content") or []:
        parts.append(render_block(block))
    structured = result.get("structuredContent")
    if structured is not None and not any(b.get("type") == "text" for b in result.get("content") or []):
        # the spec says a server SHOULD also send the JSON as text; when it does not, we do
        parts.append(json.dumps(structured, ensure_ascii=False, indent=1))
    return "\n".join(parts) if parts else "(the tool returned no content)"


def render_block(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind in ("image", "audio"):
        size = len(block.get("data") or "") * 3 // 4
        return f"[{kind}: {block.get('mimeType', '?')}, about {size} bytes, not shown as text]"
    if kind == "resource_link":
        name = f" ({block['name']})" if block.get("name") else ""
        return (f"[resource link: {block.get('uri')}{name}; read it with read_mcp_resource]")
    if kind == "resource":
        return render_contents(block.get("resource") or {})
    return f"[content of type {kind!r}, not shown]"


def render_contents(c: dict[str, Any]) -> str:
    if "text" in c:
        return str(c["text"])
    size = len(c.get("blob") or "") * 3 // 4
    return f"[binary resource {c.get('uri')} ({c.get('mimeType', '?')}), about {size} bytes]"


def cap(text: str) -> str:
    if len(text) <= READ_MAX_CHARS:
        return text
    return (text[:READ_MAX_CHARS] + f"\n[output truncated: {READ_MAX_CHARS} of {len(text)} "
            "characters shown]")


def _parameters(schema: Any) -> dict[str, Any]:
    """The tool's inputSchema with the members the Toolbox's argument check reads."""
    out = dict(schema) if isinstance(schema, dict) else {}
    out["type"] = "object"
    out.setdefault("properties", {})
    out.setdefault("required", [])
    return out


@dataclass
class Server:
    config: ServerConfig
    client: Client | None = None
    error: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    resources_supported: bool = False

    @property
    def status(self) -> str:
        if self.error:
            return "failed"
        return "connected" if self.client is not None and self.client.dead is None else "stopped"


class McpTools:
    """The ToolSource for every configured server (agent/tools.py)."""

    def __init__(self, servers: dict[str, ServerConfig], cwd: str | None = None,
                 trust_read_only: tuple[str, ...] | list[str] = (),
                 warn: Callable[[str], None] | None = None):
        self.servers = {name: Server(cfg) for name, cfg in servers.items()}
        self.cwd = cwd
        self.trusted = set(trust_read_only)
        self.warn = warn or (lambda m: print(f"groundup: warning: {m}", file=sys.stderr))
        self._defs: dict[str, tuple[str, dict[str, Any]]] = {}    # our name -> (server, tool)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "McpTools":
        threads = [threading.Thread(target=self._connect, args=(s,), daemon=True)
                   for s in self.servers.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(CONNECT_TIMEOUT + 5)
        for s in self.servers.values():
            if s.error:
                self.warn(f"MCP server {s.config.name!r} is not available: {s.error}")
        atexit.register(self.close)
        return self

    def _connect(self, s: Server) -> None:
        try:
            s.client = make_client(s.config, self.cwd, connect_timeout=CONNECT_TIMEOUT).connect()
            s.tools = s.client.list_tools()
            s.resources_supported = "resources" in s.client.capabilities
            s.error = None
        except (McpError, RPCError) as e:
            s.error = str(e)
            if s.client is not None:
                s.client.close()

    def close(self) -> None:
        for s in self.servers.values():
            if s.client is not None:
                s.client.close()

    # ------------------------------------------------------------ ToolSource

    def schemas(self) -> list[dict[str, Any]]:
        defs: dict[str, tuple[str, dict[str, Any]]] = {}
        out = []
        for s in self.servers.values():
            if s.client is not None and s.client.tools_changed and s.client.dead is None:
                try:
                    s.tools = s.client.list_tools()
                except (McpError, RPCError) as e:
                    self.warn(f"MCP server {s.config.name!r}: re-listing its tools failed: {e}")
            if s.error or s.client is None:
                continue
            for tool in s.tools:
                name = distinct_name(defs, s.config.name, str(tool.get("name", "")))
                defs[name] = (s.config.name, tool)
                out.append({"name": name,
                            "description": str(tool.get("description") or tool.get("title")
                                               or tool.get("name"))[:MAX_DESCRIPTION],
                            "parameters": _parameters(tool.get("inputSchema"))})
        if any(s.resources_supported and not s.error for s in self.servers.values()):
            out += RESOURCE_SCHEMAS
        with self._lock:
            self._defs = defs
        return out

    def is_read_only(self, name: str) -> bool:
        if name in RESOURCE_TOOLS:
            return True                   # reading a resource changes nothing we own
        found = self._defs.get(name)
        if found is None:
            return False
        server, tool = found
        hint = (tool.get("annotations") or {}).get("readOnlyHint") is True
        return hint and server in self.trusted

    def call(self, name: str, args: dict[str, Any]) -> ToolResult:
        if name == "list_mcp_resources":
            return ToolResult(cap(self.list_resources_text(args.get("server"))))
        if name == "read_mcp_resource":
            return ToolResult(cap(self.read_resource(args["server"], args["uri"])))
        found = self._defs.get(name)
        if found is None:
            raise ToolError(f"unknown MCP tool {name!r}")
        server, tool = found
        client = self._client(server)
        try:
            res = client.call_tool(str(tool["name"]), args)
        except RPCError as e:
            raise ToolError(f"MCP server {server!r} refused {tool['name']}: {e.message} "
                            f"(JSON-RPC error {e.code})") from None
        except McpError as e:
            raise ToolError(str(e)) from None
        return ToolResult(cap(render_result(res)), is_error=bool(res.get("isError")))

    def _client(self, server: str) -> Client:
        s = self.servers.get(server)
        if s is None:
            raise ToolError(f"there is no MCP server named {server!r}; the servers are "
                            + ", ".join(self.servers))
        if s.client is None:
            raise ToolError(f"MCP server {server!r} is not available: {s.error}")
        return s.client

    # ------------------------------------------------------------ resources and prompts

    def list_resources_text(self, server: str | None = None) -> str:
        lines = []
        for s in self.servers.values():
            if (server and s.config.name != server) or not s.resources_supported or s.client is None:
                continue
            try:
                for r in s.client.list_resources():
                    desc = f" -- {r['description']}" if r.get("description") else ""
                    lines.append(f"{s.config.name}  {r.get('uri')}  ({r.get('mimeType', '?')}){desc}")
            except (McpError, RPCError) as e:
                lines.append(f"{s.config.name}: listing failed: {e}")
        return "\n".join(lines) or "(no MCP resources)"

    def read_resource(self, server: str, uri: str) -> str:
        client = self._client(server)
        try:
            res = client.read_resource(uri)
        except RPCError as e:
            raise ToolError(f"MCP server {server!r} could not read {uri}: {e.message}") from None
        except McpError as e:
            raise ToolError(str(e)) from None
        return "\n".join(render_contents(c) for c in res.get("contents") or []) or "(empty resource)"

    def expand_mentions(self, text: str) -> str:
        """`@SERVER:URI` in a prompt attaches that resource's text below the prompt."""
        attached = []
        for m in MENTION.finditer(text):
            server, uri = m.group(1), m.group(2)
            if server not in self.servers:
                continue                  # an e-mail address or a decorator, not a resource
            try:
                body = self.read_resource(server, uri)
            except ToolError as e:
                body = f"(could not attach: {e})"
            attached.append(f'<resource server="{server}" uri="{uri}">\n{cap(body)}\n</resource>')
        return text if not attached else text + "\n\n" + "\n".join(attached)

    def prompts(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for s in self.servers.values():
            if s.client is not None and not s.error:
                try:
                    out += [(s.config.name, p) for p in s.client.list_prompts()]
                except (McpError, RPCError):
                    continue
        return out

    def get_prompt(self, server: str, name: str, arguments: dict[str, str]) -> str:
        """A server's prompt, its messages joined into one text for the user's turn."""
        try:
            res = self._client(server).get_prompt(name, arguments)
        except RPCError as e:
            raise ToolError(f"MCP server {server!r}: prompt {name!r}: {e.message}") from None
        except McpError as e:
            raise ToolError(str(e)) from None
        return "\n\n".join(render_block(m.get("content") or {}) for m in res.get("messages") or [])

    def prompt_command(self, cmd: str, arg: str) -> str:
        """`/mcp__SERVER__PROMPT a b` or `... key=value`: the prompt's text, as the user's turn.
        Bare words fill the prompt's arguments in the order the server lists them."""
        server, _, name = cmd.removeprefix("/mcp__").partition("__")
        known = {(srv, p.get("name")): p for srv, p in self.prompts()}
        if (server, name) not in known:
            raise ToolError(f"no MCP prompt {cmd}; /mcp lists them")
        params = [a.get("name") for a in known[(server, name)].get("arguments") or []]
        values: dict[str, str] = {}
        words = arg.split()
        for word in words:
            key, sep, value = word.partition("=")
            if sep and key in params:
                values[key] = value
        positional = [w for w in words if w.partition("=")[0] not in params or "=" not in w]
        for key, value in zip([p for p in params if p not in values], positional):
            values[key] = value
        return self.get_prompt(server, name, values)

    def status_lines(self) -> list[str]:
        lines = []
        for s in self.servers.values():
            what = (f"{len(s.tools)} tools" if not s.error else s.error)
            lines.append(f"{s.config.name}  {s.status}  {s.config.describe()}  {what}")
        return lines


_STR = {"type": "string"}
RESOURCE_SCHEMAS = [
    {"name": "list_mcp_resources",
     "description": "List the resources (files, documents, records) that the connected MCP "
                    "servers offer, as SERVER URI (mimeType).",
     "parameters": {"type": "object", "properties": {
         "server": {**_STR, "description": "only this server's resources"}},
         "required": [], "additionalProperties": False}},
    {"name": "read_mcp_resource",
     "description": "Read one resource of an MCP server by its URI.",
     "parameters": {"type": "object", "properties": {"server": _STR, "uri": _STR},
                    "required": ["server", "uri"], "additionalProperties": False}},
]
