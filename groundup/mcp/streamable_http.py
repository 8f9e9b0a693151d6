"""The Streamable HTTP transport, client side: every message is its own POST to one URL.

    POST /mcp   {"jsonrpc":"2.0","id":3,"method":"tools/call",...}
                MCP-Protocol-Version: 2026-07-28   Mcp-Method: tools/call   Mcp-Name: add
    ← 200 application/json     {"jsonrpc":"2.0","id":3,"result":{...}}
    ← 200 text/event-stream    data: {progress notification}\\n\\n  data: {response}\\n\\n
    ← 202                      (for a notification)

2026-07-28 mirrors body fields into headers (MCP-Protocol-Version, Mcp-Method, Mcp-Name, and
Mcp-Param-* for tool arguments marked `x-mcp-header`) so that proxies can route without
parsing JSON; the server checks they agree. 2025-11-25 instead has sessions: the
`initialize` response carries `Mcp-Session-Id`, every later request sends it back, and a
404 means the session is gone and the client must initialize again (`SessionExpired`).

Design choices:
- Each request runs its POST on a short-lived thread that feeds the client's Sink, exactly
  like the stdio reader thread does, so the client code above is the same for both
  transports (wait for the response with this id, with a timeout).
- Cancelling a 2026-07-28 request is closing its response stream (the spec's signal on
  HTTP); a 2025 server is sent notifications/cancelled instead, by the client.
- No standalone GET stream: groundup never needs server-initiated requests (it declares
  no sampling, elicitation or roots), and 2026-07-28 removed the GET endpoint anyway.
- An HTTP error whose body is a JSON-RPC error is delivered as that error (a modern server
  says "unsupported version" with a 400); anything else becomes an `HttpStatusError` that
  quotes the status and the start of the body.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any

import httpx

from groundup.mcp import jsonrpc
from groundup.mcp.protocol import META_VERSION
from groundup.mcp.errors import McpError
from groundup.mcp.stdio import Sink

NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_SAFE_HEADER = re.compile(r"[\x20-\x7e]*\Z")


class HttpStatusError(McpError):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class SessionExpired(McpError):
    """404 for a request that carried a session id: initialize again (2025-11-25)."""


def header_value(value: Any) -> str:
    """A value as an HTTP header: plain when it is safe visible ASCII, else the spec's
    `=?base64?...?=` sentinel (streamable-http.mdx, "Value Encoding")."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    plain = (_SAFE_HEADER.match(text) and text == text.strip()
             and not (text.startswith("=?base64?") and text.endswith("?=")))
    if plain:
        return text
    return "=?base64?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


_TCHAR = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")       # RFC 9110 token


def param_headers(schema: dict[str, Any]) -> dict[tuple[str, ...], str]:
    """The `x-mcp-header` annotations of a tool's inputSchema: property path -> header name.
    Raises ValueError saying which rule of server/tools.mdx ("x-mcp-header") is broken."""
    found: dict[tuple[str, ...], str] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if not isinstance(node, dict):
            return
        if "x-mcp-header" in node and path:
            name = node["x-mcp-header"]
            if not isinstance(name, str) or not name:
                raise ValueError(f"x-mcp-header of {'.'.join(path)} is empty")
            if not _TCHAR.match(name):
                raise ValueError(f"x-mcp-header {name!r} is not an HTTP header token")
            if node.get("type") not in ("string", "integer", "boolean"):
                raise ValueError(f"x-mcp-header {name!r} is on a {node.get('type')!r} property; "
                                 "only string, integer and boolean may be mirrored")
            if name.lower() in {n.lower() for n in found.values()}:
                raise ValueError(f"x-mcp-header {name!r} is used twice")
            found[path] = name
        for key, sub in (node.get("properties") or {}).items():
            walk(sub, path + (key,))

    walk(schema, ())
    return found


def param_header_values(schema: dict[str, Any], arguments: dict[str, Any]) -> dict[str, str]:
    """Mcp-Param-* headers for a call: each annotated argument that is present and not null."""
    out = {}
    for path, name in param_headers(schema).items():
        value: Any = arguments
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            out[f"Mcp-Param-{name}"] = header_value(value)
    return out


class HttpTransport:
    def __init__(self, name: str, url: str, headers: dict[str, str] | None = None,
                 connect_timeout: float = 10.0):
        self.name, self.url = name, url
        self.headers = dict(headers or {})
        self.http = httpx.Client(timeout=httpx.Timeout(connect_timeout, read=None))
        self.protocol_version: str | None = None     # set by the client after a 2025 handshake
        self.session_id: str | None = None
        self.streams: dict[jsonrpc.Id, httpx.Response] = {}
        self.cancelled: set[jsonrpc.Id] = set()
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return self.url

    def start(self, sink: Sink) -> None:
        self.sink = sink

    def send(self, msg: jsonrpc.Message, headers: dict[str, str] | None = None) -> None:
        if isinstance(msg, jsonrpc.Request):
            threading.Thread(target=self._post_request, args=(msg, headers or {}), daemon=True,
                             name=f"mcp-{self.name}-{msg.id}").start()
            return
        r = self._post(msg, headers or {})         # notifications and responses: 202, no body
        if r.status_code >= 400:
            raise self._status_error(r, r.text)

    def cancel(self, request_id: jsonrpc.Id) -> bool:
        if self.protocol_version is not None:
            return False                  # a 2025 session: the client sends notifications/cancelled
        with self._lock:
            stream = self.streams.pop(request_id, None)
            self.cancelled.add(request_id)
        if stream is not None:
            stream.close()                # 2026-07-28: closing the stream is the cancellation
        return True

    def close(self) -> None:
        if self.session_id is not None:
            try:                          # end the 2025 session politely; a 405 is allowed
                self.http.delete(self.url, headers=self._headers(None, {}), timeout=5)
            except httpx.HTTPError:
                pass
            self.session_id = None
        self.http.close()

    # ------------------------------------------------------------ one POST

    def _headers(self, msg: jsonrpc.Message | None, extra: dict[str, str]) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
             **self.headers}
        params = getattr(msg, "params", None) or {}
        modern_version = (params.get("_meta") or {}).get(META_VERSION)
        if modern_version:
            h["MCP-Protocol-Version"] = modern_version
            h["Mcp-Method"] = msg.method                 # type: ignore[union-attr]
            key = NAMED.get(msg.method)                  # type: ignore[union-attr]
            if key and key in params:
                h["Mcp-Name"] = header_value(params[key])
        elif self.protocol_version:
            h["MCP-Protocol-Version"] = self.protocol_version
        if self.session_id:
            h["Mcp-Session-Id"] = self.session_id
        h.update(extra)
        return h

    def _post(self, msg: jsonrpc.Message, extra: dict[str, str]) -> httpx.Response:
        try:
            return self.http.post(self.url, content=jsonrpc.encode(msg).encode("utf-8"),
                                  headers=self._headers(msg, extra))
        except httpx.HTTPError as e:
            raise McpError(f"MCP server {self.name!r}: cannot reach {self.url} ({e})") from None

    def _post_request(self, msg: jsonrpc.Request, extra: dict[str, str]) -> None:
        try:
            with self.http.stream("POST", self.url, content=jsonrpc.encode(msg).encode("utf-8"),
                                  headers=self._headers(msg, extra)) as r:
                with self._lock:
                    self.streams[msg.id] = r
                if msg.method == "initialize" and r.headers.get("mcp-session-id"):
                    self.session_id = r.headers["mcp-session-id"]
                ctype = r.headers.get("content-type", "")
                if r.status_code < 300 and ctype.startswith("text/event-stream"):
                    self._read_events(msg.id, r)
                    return
                body = r.read().decode("utf-8", "replace")
                self._deliver_body(msg, r, body)
        except httpx.HTTPError as e:
            with self._lock:
                cancelled = msg.id in self.cancelled
            if not cancelled:
                what = (f"cannot reach {self.url} ({e}): is the server running, and the URL right?"
                        if isinstance(e, httpx.ConnectError) else
                        f"request to {self.url} failed ({e})")
                self.sink.request_failed(msg.id, McpError(f"MCP server {self.name!r}: {what}"))
        finally:
            with self._lock:
                self.streams.pop(msg.id, None)
                self.cancelled.discard(msg.id)

    def _deliver_body(self, msg: jsonrpc.Request, r: httpx.Response, body: str) -> None:
        if r.status_code == 404 and "Mcp-Session-Id" in r.request.headers:
            self.session_id = None
            self.sink.request_failed(msg.id, SessionExpired(
                f"MCP server {self.name!r}: the session expired (404)"))
            return
        try:
            parsed = jsonrpc.parse(body)
        except jsonrpc.RPCError:
            parsed = None
        if isinstance(parsed, jsonrpc.Response) and (r.status_code < 300 or parsed.error):
            if parsed.id is None:
                parsed.id = msg.id        # an error about the request as a whole
            self.sink.message(parsed)
            return
        self.sink.request_failed(msg.id, self._status_error(r, body))

    def _status_error(self, r: httpx.Response, body: str) -> HttpStatusError:
        hint = (" (check the Authorization header configured for this server)"
                if r.status_code in (401, 403) else "")
        shown = " ".join(body.split())[:200]
        return HttpStatusError(f"MCP server {self.name!r}: HTTP {r.status_code} from {self.url}"
                               f"{hint}{': ' + shown if shown else ''}", r.status_code)

    def _read_events(self, request_id: jsonrpc.Id, r: httpx.Response) -> None:
        """Server-Sent Events: `data:` lines accumulate, a blank line ends an event,
        lines starting with ':' are comments (keep-alives)."""
        data: list[str] = []
        for line in r.iter_lines():
            if line.startswith(":"):
                continue
            if line == "":
                if data:
                    if self._deliver_event("\n".join(data), request_id):
                        return
                    data = []
                continue
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value[1:] if value.startswith(" ") else value)
        if data and self._deliver_event("\n".join(data), request_id):
            return
        with self._lock:
            cancelled = request_id in self.cancelled
        if not cancelled:
            self.sink.request_failed(request_id, McpError(
                f"MCP server {self.name!r} closed the response stream before answering"))

    def _deliver_event(self, data: str, request_id: jsonrpc.Id) -> bool:
        """Hand one event's message to the client; True once our response has arrived."""
        if not data.strip():
            return False                  # a 2025 "priming" event with an id and no data
        try:
            msg = jsonrpc.parse(data)
        except jsonrpc.RPCError as e:
            self.sink.request_failed(request_id, McpError(
                f"MCP server {self.name!r} sent an event that is not JSON-RPC: "
                f"{data[:200]!r} ({e.message})"))
            return True
        self.sink.message(msg)            # type: ignore[arg-type]
        return isinstance(msg, jsonrpc.Response) and msg.id == request_id
