"""groundup as an MCP server: the agent's own tools and the workspace's files, served to any
MCP client (Claude Desktop, Cursor, the official SDK, groundup itself).

    tools       read_file, grep, glob, list_dir      (+ edit_file, write_file, bash with
                                                      allow_writes; + ToolSources you pass in:
                                                      `groundup mcp serve` passes search_code
                                                      when the workspace has an index)
    resources   every file of the workspace that git would not ignore, as file:// URIs

One `McpServer` answers both eras. How a request is read (2026-07-28 basic/versioning.mdx,
"a dual-era server selects its behavior from how the client opens"):

    request carries _meta["io.modelcontextprotocol/protocolVersion"]   → 2026-07-28, stateless:
        a version we do not speak gets -32022 with the versions we do; a missing
        clientCapabilities gets -32602; results carry resultType, serverInfo, caching hints
    `initialize`                                                       → 2025 revision, kept in
        the connection's `Session` (the stdio process, or one Mcp-Session-Id on HTTP)
    neither                                                            → -32602 saying to do one

Design choices:
- This module sits *above* the agent: a tool call goes through the agent's Toolbox, so the
  server confines paths to the root exactly as the agent does (symlinks resolved first),
  checks arguments against the same schemas, and applies the same permission rules (from
  the workspace's settings; there is nobody to approve, so "ask" means "refuse").
- A tool that fails is a result with isError (the model can read it and adapt); an unknown
  tool or a malformed request is a JSON-RPC error (spec: server/tools.mdx, "Error Handling").
- Transports (stdio below, HTTP in http_server.py) only move bytes; everything that depends
  on the protocol is here, so both transports behave the same by construction.
"""

from __future__ import annotations

import base64
import mimetypes
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import unquote, urlparse

from groundup.agent.permissions import ConfinementError, Permissions, confine
from groundup.agent.search import walk_files
from groundup.agent.tools import READ_MAX_CHARS, Toolbox, ToolSource
from groundup.chat.types import ToolCall
from groundup.mcp import jsonrpc
from groundup.mcp.jsonrpc import Notification, Request, Response, RPCError
from groundup.mcp.protocol import (CACHEABLE, IMPLEMENTATION, LATEST_LEGACY, LEGACY_VERSIONS,
                                   META_CLIENT_CAPS, META_SERVER_INFO, META_VERSION,
                                   MODERN_VERSIONS)

READ_TOOLS = ("read_file", "grep", "glob", "list_dir")
WRITE_TOOLS = ("edit_file", "write_file", "bash")
PAGE = 100                    # resources per resources/list page
MAX_RESOURCES = 10_000
INSTRUCTIONS = ("Tools of the groundup coding agent, confined to one workspace directory: "
                "read_file pages numbered lines, grep searches contents, glob and list_dir "
                "find files. Paths are relative to the workspace.")


@dataclass
class Session:
    """What a 2025 connection negotiated (one per stdio process, or per Mcp-Session-Id)."""
    version: str | None = None
    initialized: bool = False
    in_flight: set[jsonrpc.Id] = field(default_factory=set)
    cancelled: set[jsonrpc.Id] = field(default_factory=set)


class McpServer:
    def __init__(self, root: Path, allow_writes: bool = False,
                 permissions: Permissions | None = None, sources: Sequence[ToolSource] = (),
                 name: str = "groundup"):
        self.root = Path(root).resolve()
        self.permissions = permissions or Permissions(mode="default")
        tools = list(READ_TOOLS) + (list(WRITE_TOOLS) if allow_writes else [])
        # sources: more ToolSources to serve (search_code, from mcp/cli.py)
        self.toolbox = Toolbox(self.root, permissions=self.permissions, tools=tools,
                               sources=sources)
        self.info = {**IMPLEMENTATION, "name": name}
        self._calls = iter(range(1, 1 << 62))

    # ------------------------------------------------------------ dispatch

    def handle(self, msg: jsonrpc.Message, session: Session) -> Response | None:
        """The response to one message (None for notifications and cancelled requests)."""
        if isinstance(msg, Notification):
            self._notification(msg, session)
            return None
        if isinstance(msg, Response):
            return None                   # we never ask the client anything
        try:
            result = self.dispatch(msg, session)
        except RPCError as e:
            response = Response(msg.id, error=e)
        except Exception as e:            # a bug here must not take the connection down
            traceback.print_exc(file=sys.stderr)
            response = jsonrpc.error_response(msg.id, jsonrpc.INTERNAL_ERROR,
                                              f"internal error: {type(e).__name__}: {e}")
        else:
            response = Response(msg.id, result=result)
        if msg.id in session.cancelled:   # the client no longer wants it (spec: send nothing)
            session.cancelled.discard(msg.id)
            return None
        return response

    def _notification(self, msg: Notification, session: Session) -> None:
        if msg.method == "notifications/initialized":
            session.initialized = True
        elif msg.method == "notifications/cancelled":
            rid = msg.params.get("requestId")
            if rid in session.in_flight:
                session.cancelled.add(rid)

    def era(self, req: Request, session: Session, modern_transport: bool = False) -> str | None:
        """The modern version a request declares (checked), or None for a 2025 session."""
        meta = req.params.get("_meta")
        version = meta.get(META_VERSION) if isinstance(meta, dict) else None
        if modern_transport and version is None:
            raise RPCError(jsonrpc.INVALID_PARAMS, f"_meta[{META_VERSION!r}] is required on every "
                                                   "2026-07-28 request")
        if version is not None:
            if version not in MODERN_VERSIONS:
                raise RPCError(jsonrpc.UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version",
                               {"supported": list(MODERN_VERSIONS), "requested": version})
            if not isinstance(meta.get(META_CLIENT_CAPS), dict):
                raise RPCError(jsonrpc.INVALID_PARAMS, f"_meta[{META_CLIENT_CAPS!r}] is required "
                                                       "on every 2026-07-28 request")
            return version
        if session.version is None and req.method not in ("initialize", "ping"):
            raise RPCError(jsonrpc.INVALID_PARAMS,
                           f"no protocol version: send _meta[{META_VERSION!r}] with each request "
                           f"(2026-07-28), or initialize first ({', '.join(LEGACY_VERSIONS)})")
        return None

    def dispatch(self, req: Request, session: Session) -> dict[str, Any]:
        modern = self.era(req, session)
        handler: Callable[[dict[str, Any], bool], dict[str, Any]] | None = {
            "initialize": lambda p, m: self.initialize(p, session),
            "ping": lambda p, m: {},
            "server/discover": self.discover,
            "tools/list": self.list_tools,
            "tools/call": self.call_tool,
            "resources/list": self.list_resources,
            "resources/templates/list": lambda p, m: {"resourceTemplates": []},
            "resources/read": self.read_resource,
            "prompts/list": lambda p, m: {"prompts": []},
        }.get(req.method)
        removed = ("server/discover",) if not modern else ("initialize", "ping")
        if handler is None or req.method in removed:
            raise RPCError(jsonrpc.METHOD_NOT_FOUND, f"Method not found: {req.method}")
        session.in_flight.add(req.id)
        try:
            result = handler(req.params, modern is not None)
        finally:
            session.in_flight.discard(req.id)
        if modern:
            result = {**result, "resultType": "complete",
                      "_meta": {**(result.get("_meta") or {}), META_SERVER_INFO: self.info}}
            if req.method in CACHEABLE:
                # files change under us, and they are this user's: fresh every time, private
                result.setdefault("ttlMs", 0)
                result.setdefault("cacheScope", "private")
        return result

    # ------------------------------------------------------------ lifecycle

    def capabilities(self) -> dict[str, Any]:
        # prompts: none yet, but the (empty) list answers like the others
        return {"tools": {"listChanged": False}, "resources": {"listChanged": False},
                "prompts": {"listChanged": False}}

    def initialize(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        asked = params.get("protocolVersion")
        # the same version if we speak it, else our latest (the client may then disconnect)
        session.version = asked if asked in LEGACY_VERSIONS else LATEST_LEGACY
        return {"protocolVersion": session.version, "capabilities": self.capabilities(),
                "serverInfo": self.info, "instructions": INSTRUCTIONS}

    def discover(self, params: dict[str, Any], modern: bool) -> dict[str, Any]:
        return {"supportedVersions": list(MODERN_VERSIONS), "capabilities": self.capabilities(),
                "instructions": INSTRUCTIONS}

    # ------------------------------------------------------------ tools

    def list_tools(self, params: dict[str, Any], modern: bool) -> dict[str, Any]:
        tools = []
        for s in self.toolbox.schemas():
            read_only = self.toolbox.is_read_only(s["name"])
            tools.append({"name": s["name"], "description": s["description"],
                          "inputSchema": s["parameters"],
                          "annotations": {"readOnlyHint": read_only,
                                          "destructiveHint": s["name"] != "bash" and not read_only,
                                          "openWorldHint": False}})
        return {"tools": tools}

    def call_tool(self, params: dict[str, Any], modern: bool) -> dict[str, Any]:
        name, args = params.get("name"), params.get("arguments") or {}
        if not isinstance(name, str) or name not in {s["name"] for s in self.toolbox.schemas()}:
            raise RPCError(jsonrpc.INVALID_PARAMS, f"Unknown tool: {name}")
        if not isinstance(args, dict):
            raise RPCError(jsonrpc.INVALID_PARAMS, '"arguments" must be an object')
        result = self.toolbox.execute(ToolCall(id=f"mcp-{next(self._calls)}", name=name,
                                               arguments=args))
        return {"content": [{"type": "text", "text": result.content}], "isError": result.is_error}

    # ------------------------------------------------------------ resources

    def uri_of(self, rel: str) -> str:
        return (self.root / rel).as_uri()

    def path_of(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise RPCError(jsonrpc.INVALID_PARAMS, f"Resource not found: {uri} (only file:// "
                                                   "URIs of the workspace are served)")
        try:
            return confine(self.root, unquote(parsed.path))
        except ConfinementError as e:
            raise RPCError(jsonrpc.INVALID_PARAMS, f"Resource not found: {uri} ({e})") from None

    def list_resources(self, params: dict[str, Any], modern: bool) -> dict[str, Any]:
        files = []
        for rel in walk_files(self.root, self.root):
            if self.toolbox.visible(rel) and not rel.startswith(".groundup/"):
                files.append(rel)
            if len(files) >= MAX_RESOURCES:
                break
        files.sort()
        cursor = params.get("cursor")
        start = int(cursor) if isinstance(cursor, str) and cursor.isdigit() else 0
        if cursor is not None and not (isinstance(cursor, str) and cursor.isdigit()):
            raise RPCError(jsonrpc.INVALID_PARAMS, f"invalid cursor {cursor!r}")
        page = files[start:start + PAGE]
        out: dict[str, Any] = {"resources": [
            {"uri": self.uri_of(rel), "name": rel,
             "mimeType": mimetypes.guess_type(rel)[0] or "text/plain",
             "size": (self.root / rel).stat().st_size} for rel in page]}
        if start + PAGE < len(files):
            out["nextCursor"] = str(start + PAGE)
        return out

    def read_resource(self, params: dict[str, Any], modern: bool) -> dict[str, Any]:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise RPCError(jsonrpc.INVALID_PARAMS, '"uri" is required')
        code = jsonrpc.INVALID_PARAMS if modern else jsonrpc.RESOURCE_NOT_FOUND_LEGACY
        try:
            path = self.path_of(uri)
        except RPCError as e:
            raise RPCError(code, e.message, {"uri": uri}) from None
        rel = path.relative_to(self.root).as_posix()
        if not path.is_file() or not self.toolbox.visible(rel):
            raise RPCError(code, f"Resource not found: {uri}", {"uri": uri})
        data = path.read_bytes()
        mime = mimetypes.guess_type(rel)[0] or "text/plain"
        try:
            text = data.decode("utf-8")
            if "\x00" in text[:8192]:
                raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
            content = {"uri": self.uri_of(rel), "mimeType": mime, "text": text[:READ_MAX_CHARS * 10]}
        except UnicodeDecodeError:
            content = {"uri": self.uri_of(rel), "mimeType": mimetypes.guess_type(rel)[0]
                       or "application/octet-stream", "blob": base64.b64encode(data).decode()}
        return {"contents": [content]}


# ---------------------------------------------------------------- the stdio transport

def serve_stdio(server: McpServer, stdin: Any = None, stdout: Any = None,
                workers: int = 4) -> None:
    """Read newline-delimited JSON-RPC from stdin, answer on stdout, until stdin closes.
    Requests run on a small pool, so a `notifications/cancelled` (or a ping) is read while a
    slow tool is still working."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    session = Session()
    lock = threading.Lock()

    def write(payload: str) -> None:
        with lock:
            stdout.write(payload.encode("utf-8") + b"\n")
            stdout.flush()

    def run(msg: jsonrpc.Message) -> None:
        response = server.handle(msg, session)
        if response is not None:
            write(jsonrpc.encode(response))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for raw in stdin:
            line = raw.strip()
            if not line:
                continue
            try:
                # JSON-RPC batches exist only in 2025-03-26 (and only in a session using it)
                msg = jsonrpc.parse(line, allow_batch=session.version == "2025-03-26")
            except RPCError as e:
                write(jsonrpc.encode(Response(None, error=e)))
                continue
            if isinstance(msg, list):
                responses = [r for r in (server.handle(m, session) for m in msg) if r is not None]
                if responses:
                    write(jsonrpc.encode(responses))
            elif isinstance(msg, Request) and msg.method == "initialize":
                run(msg)                  # in order: everything after depends on it
            elif isinstance(msg, Notification):
                server.handle(msg, session)
            else:
                pool.submit(run, msg)
