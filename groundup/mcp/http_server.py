"""`groundup mcp serve --transport http`: the Streamable HTTP side of McpServer (server.py).

    POST /mcp  a request       → 200 application/json with the response
               a notification  → 202
    GET  /mcp                  → 405 (no server-initiated stream: we never send requests)
    DELETE /mcp + session id   → ends a 2025-11-25 session

What is checked before a message reaches the protocol code, in this order:
1. Host and Origin (DNS rebinding: a web page whose domain now resolves to 127.0.0.1 must
   not reach a local server) -- a name other than the loopback ones and the bound host → 403.
2. The bearer token, when one is set (`--token` or $GROUNDUP_MCP_TOKEN): anything else → 401,
   with no body, so an unauthenticated caller learns nothing.
3. For 2026-07-28 requests, the mirrored headers (MCP-Protocol-Version, Mcp-Method, Mcp-Name)
   must agree with the body → 400 with HeaderMismatch (-32020); an unsupported version → 400
   with -32022; an unknown method → 404 with -32601 (streamable-http.mdx, "Server Validation").
4. For 2025 sessions: `initialize` mints an Mcp-Session-Id; later requests must carry it
   (missing → 400, unknown or ended → 404, which tells the client to initialize again).

Design choices:
- The standard library's ThreadingHTTPServer, one thread per connection: this server is for
  one user's editor or agent on localhost, and a thread per request is plenty and readable.
- Responses are plain JSON, never SSE: our tools report no progress, and the spec lets the
  server choose per request.
- Binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

from groundup.mcp import jsonrpc
from groundup.mcp.jsonrpc import Notification, Request, Response, RPCError
from groundup.mcp.protocol import LEGACY_VERSIONS, META_VERSION, MODERN_VERSIONS
from groundup.mcp.server import McpServer, Session

PATH = "/mcp"
MAX_BODY = 4 * 1024 * 1024
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


def _decode_header(value: str) -> str:
    if value.startswith("=?base64?") and value.endswith("?="):
        return base64.b64decode(value[9:-2]).decode("utf-8")
    return value


class McpHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, server: McpServer, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, quiet: bool = True):
        self.mcp, self.token, self.quiet = server, token, quiet
        self.allowed_hosts = LOOPBACK | {host}
        self.sessions: dict[str, Session] = {}
        self.sessions_lock = threading.Lock()
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{PATH}"


class Handler(BaseHTTPRequestHandler):
    server: McpHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"groundup mcp: {self.address_string()} {fmt % args}\n")

    # ------------------------------------------------------------ replies

    def reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reply_error(self, status: int, rid: Any, code: int, message: str, data: Any = None) -> None:
        self.reply(status, jsonrpc.error_response(rid, code, message, data).to_dict())

    # ------------------------------------------------------------ the gates

    def gate(self) -> bool:
        """Host/Origin and token checks; False when a reply was already sent."""
        if urlparse(self.path).path != PATH:
            self.reply(404)
            return False
        host = self.headers.get("Host") or ""
        host = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        origin = self.headers.get("Origin")
        origin_host = urlparse(origin).hostname if origin else None
        if host not in self.server.allowed_hosts or (origin and origin_host not in self.server.allowed_hosts):
            self.reply_error(403, None, jsonrpc.INVALID_REQUEST,
                             "forbidden: Host/Origin is not this local server (DNS rebinding?)")
            return False
        if self.server.token is not None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode()):
                self.reply(401, headers={"WWW-Authenticate": 'Bearer realm="groundup"'})
                return False
        return True

    def do_GET(self) -> None:
        if self.gate():
            self.reply(405, headers={"Allow": "POST, DELETE"})

    def do_DELETE(self) -> None:
        if not self.gate():
            return
        sid = self.headers.get("Mcp-Session-Id")
        with self.server.sessions_lock:
            found = self.server.sessions.pop(sid, None) if sid else None
        self.reply(200 if found else (404 if sid else 400))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True      # the unread body would desync the connection
            self.reply_error(413, None, jsonrpc.INVALID_REQUEST, "request body too large")
            return
        body = self.rfile.read(length)        # read before any reply, even a refusal
        if not self.gate():
            return
        try:
            msg = jsonrpc.parse(body)
        except RPCError as e:
            self.reply(400, Response(None, error=e).to_dict())
            return
        assert not isinstance(msg, list)
        meta = (getattr(msg, "params", None) or {}).get("_meta") or {}
        header = self.headers.get("MCP-Protocol-Version")
        if isinstance(msg, Request) and ((isinstance(meta, dict) and META_VERSION in meta)
                                         or header in MODERN_VERSIONS):
            self.modern(msg, meta.get(META_VERSION) if isinstance(meta, dict) else None)
        else:
            self.legacy(msg)

    # ------------------------------------------------------------ the two eras

    def modern(self, req: Request, version: Any) -> None:
        h = self.headers
        problems = []
        try:
            self.server.mcp.era(req, Session(), modern_transport=True)   # required _meta present?
        except RPCError as e:
            if e.code != jsonrpc.UNSUPPORTED_PROTOCOL_VERSION:
                self.reply(400, Response(req.id, error=e).to_dict())
                return
        if (h.get("MCP-Protocol-Version") or "").strip() != version:
            problems.append(f"MCP-Protocol-Version header {h.get('MCP-Protocol-Version')!r} "
                            f"does not match the body's {version!r}")
        if (h.get("Mcp-Method") or "").strip() != req.method:
            problems.append(f"Mcp-Method header {h.get('Mcp-Method')!r} does not match "
                            f"{req.method!r}")
        key = NAMED.get(req.method)
        if key is not None:
            try:
                named = _decode_header((h.get("Mcp-Name") or "").strip())
            except (ValueError, UnicodeDecodeError):
                named = None
            if h.get("Mcp-Name") is None or named != req.params.get(key):
                problems.append(f"Mcp-Name header {h.get('Mcp-Name')!r} does not match the "
                                f"body's {key} {req.params.get(key)!r}")
        if problems:
            self.reply_error(400, req.id, jsonrpc.HEADER_MISMATCH,
                             "Header mismatch: " + "; ".join(problems))
            return
        if version not in MODERN_VERSIONS:
            self.reply_error(400, req.id, jsonrpc.UNSUPPORTED_PROTOCOL_VERSION,
                             "Unsupported protocol version",
                             {"supported": list(MODERN_VERSIONS), "requested": version})
            return
        response = self.server.mcp.handle(req, Session())    # stateless: a fresh Session
        assert response is not None
        failed = response.error is not None and response.error.code == jsonrpc.METHOD_NOT_FOUND
        status = 404 if failed else 200
        self.reply(status, response.to_dict())

    def legacy(self, msg: jsonrpc.Message) -> None:
        header_version = self.headers.get("MCP-Protocol-Version")
        if header_version is not None and header_version not in LEGACY_VERSIONS + MODERN_VERSIONS:
            self.reply_error(400, getattr(msg, "id", None), jsonrpc.INVALID_REQUEST,
                             f"unsupported MCP-Protocol-Version {header_version!r}")
            return
        if isinstance(msg, Request) and msg.method == "initialize":
            session, sid = Session(), secrets.token_urlsafe(24)
            response = self.server.mcp.handle(msg, session)
            assert response is not None
            if response.error is None:
                with self.server.sessions_lock:
                    self.server.sessions[sid] = session
                self.reply(200, response.to_dict(), {"Mcp-Session-Id": sid})
            else:
                self.reply(400, response.to_dict())
            return
        sid = self.headers.get("Mcp-Session-Id")
        rid = getattr(msg, "id", None)
        if not sid:
            self.reply_error(400, rid, jsonrpc.INVALID_REQUEST,
                             "missing Mcp-Session-Id: initialize first (2025-11-25), or send "
                             f"_meta[{META_VERSION!r}] with the request (2026-07-28)")
            return
        with self.server.sessions_lock:
            session = self.server.sessions.get(sid)
        if session is None:
            self.reply_error(404, rid, jsonrpc.INVALID_REQUEST,
                             "unknown or expired session: initialize again")
            return
        response = self.server.mcp.handle(msg, session)
        if response is None or isinstance(msg, Notification):
            self.reply(202)
        else:
            self.reply(200, response.to_dict())


def serve_http(server: McpServer, host: str, port: int, token: str | None,
               ready: Any = None) -> None:
    httpd = McpHttpServer(server, host, port, token, quiet=True)
    print(f"groundup mcp: serving {server.root} on {httpd.url}"
          + (" (bearer token required)" if token else ""), file=sys.stderr, flush=True)
    if ready is not None:
        ready(httpd)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
