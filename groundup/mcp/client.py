"""The MCP client: one connection to one server, whichever revision it speaks.

    client = Client("files", StdioTransport("files", "python", ["server.py"]))
    client.connect()                     # negotiate: server/discover, else initialize
    client.list_tools()                  # [{"name", "description", "inputSchema", ...}]
    client.call_tool("read", {"path": "a.txt"}, timeout=30, on_progress=print)
    client.close()

How a connection picks its revision (2026-07-28 basic/versioning.mdx, "Backward
Compatibility"): send `server/discover` with 2026-07-28 in `_meta`. A DiscoverResult means a
modern server: every later request carries its `_meta`, no session. An
UnsupportedProtocolVersion error (-32022) also means a modern server, so retry with a
version from its `supported` list and never fall back. Any other error, a 4xx without a
modern error body, or silence within the probe timeout means a 2025 server: do the
`initialize` handshake and send `notifications/initialized`.

Design choices:
- Synchronous, with threads: the transport's reader thread resolves a `_Pending` slot per
  request id; the caller waits on it. The agent's tools are synchronous, and a reader
  thread plus an Event is the smallest machinery that keeps ids matched while several
  calls are in flight.
- Every wait has a deadline. A timed-out request is cancelled (notifications/cancelled, or
  a closed stream on 2026-07-28 HTTP) and raises `Timeout`; a progress notification
  restarts the clock, up to `MAX_TIMEOUT_FACTOR` times the timeout in all (the spec's
  "MAY reset, SHOULD cap").
- Ctrl-C while waiting cancels the request on the server too, then propagates.
- A server that dies fails every pending request at once with its exit reason; the next
  request reconnects (the spec: the client SHOULD restart a server that exited).
- A response for an id nobody waits for (cancelled, timed out) is dropped, as the spec says.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from groundup.mcp import jsonrpc
from groundup.mcp.jsonrpc import Notification, Request, Response, RPCError
from groundup.mcp.protocol import (IMPLEMENTATION, LATEST_LEGACY, LATEST_MODERN, LEGACY_VERSIONS,
                                   MODERN_VERSIONS, SUPPORTED_VERSIONS, is_modern, request_meta,
                                   result_type, with_meta)
from groundup.mcp.errors import McpError
from groundup.mcp.streamable_http import (HttpStatusError, HttpTransport, SessionExpired,
                                          param_header_values, param_headers)

DEFAULT_TIMEOUT = 60.0
PROBE_TIMEOUT = 10.0
MAX_TIMEOUT_FACTOR = 10
MAX_PAGES = 100
MODERN_ERRORS = (jsonrpc.UNSUPPORTED_PROTOCOL_VERSION, jsonrpc.MISSING_REQUIRED_CLIENT_CAPABILITY,
                 jsonrpc.HEADER_MISMATCH)

Progress = Callable[[float, float | None, str | None], None]


class Timeout(McpError):
    """The server did not answer in time; the request was cancelled."""


@dataclass
class _Pending:
    method: str
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: Exception | None = None
    on_progress: Progress | None = None
    last_activity: float = field(default_factory=time.monotonic)


class Client:
    def __init__(self, name: str, transport: Any, timeout: float = DEFAULT_TIMEOUT,
                 connect_timeout: float = 30.0,
                 on_log: Callable[[dict[str, Any]], None] | None = None,
                 trace: Callable[[str, dict[str, Any]], None] | None = None,
                 version: str | None = None):
        self.name, self.transport = name, transport
        self.pinned = version                 # speak only this revision (no probing)
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.on_log, self.trace = on_log, trace
        self._ids = itertools.count(1)
        self._pending: dict[jsonrpc.Id, _Pending] = {}
        self._lock = threading.Lock()
        self.version: str | None = None
        self.server_info: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}
        self.instructions: str | None = None
        self.dead: str | None = None          # why the connection ended, once it has
        self.tools_changed = False            # a list_changed notification arrived
        self.schemas: dict[str, dict[str, Any]] = {}       # tool name -> inputSchema, last listed
        self.rejected: dict[str, str] = {}    # tools left out of tools/list, and why

    @property
    def modern(self) -> bool:
        return is_modern(self.version)

    # ------------------------------------------------------------ lifecycle

    def connect(self) -> "Client":
        self.dead = None
        self.transport.start(self)
        try:
            self._negotiate()
        except BaseException:
            self.transport.close()
            raise
        return self

    def _negotiate(self) -> None:
        if self.pinned in LEGACY_VERSIONS:
            return self._initialize(self.pinned)
        started = time.monotonic()
        if self._discover(min(PROBE_TIMEOUT, self.connect_timeout)):
            return
        try:
            self._initialize(timeout=max(1.0, self.connect_timeout - (time.monotonic() - started)))
        except RPCError as e:
            # a modern server that was only slow to start answers initialize with a modern
            # error: it is modern after all, so ask again and wait for it this time
            if e.code not in MODERN_ERRORS or not self._discover(self.connect_timeout):
                raise

    def _discover(self, timeout: float) -> bool:
        """The server/discover probe: True when the server is modern (and adopted), False
        when it looks like a 2025 server; raises when it is neither."""
        version = self.pinned or LATEST_MODERN
        for _ in range(2):
            try:
                res = self._send_request("server/discover", with_meta({}, request_meta(version)),
                                         timeout=timeout)
            except RPCError as e:
                if e.code != jsonrpc.UNSUPPORTED_PROTOCOL_VERSION:
                    return False          # a 2025 server answering an unknown method
                data = e.data if isinstance(e.data, dict) else {}
                offered = data.get("supported") or []
                common = [v for v in MODERN_VERSIONS if v in offered]
                if not common:
                    raise McpError(f"MCP server {self.name!r} speaks protocol versions "
                                   f"{', '.join(map(str, offered)) or '(none listed)'}; groundup "
                                   f"speaks {', '.join(SUPPORTED_VERSIONS)}") from None
                version = common[0]
                continue
            except Timeout:
                return False              # silence: a 2025 server that ignores it
            except HttpStatusError as e:
                if e.status >= 500 or e.status in (401, 403):
                    raise
                return False              # 400/404/405 without a modern error body
            offered = res.get("supportedVersions") or []
            common = [v for v in MODERN_VERSIONS if v in offered]
            if not common:
                return False              # answers discover but speaks only 2025 revisions
            self.version = version if version in offered else common[0]
            self._adopt(res)
            return True
        return False

    def _initialize(self, offer: str = LATEST_LEGACY, timeout: float | None = None) -> None:
        self.transport.protocol_version = None
        res = self._send_request("initialize", {
            "protocolVersion": offer, "capabilities": {}, "clientInfo": IMPLEMENTATION},
            timeout=timeout or self.connect_timeout)
        version = res.get("protocolVersion")
        if version not in LEGACY_VERSIONS:
            raise McpError(f"MCP server {self.name!r} answered initialize with protocol version "
                           f"{version!r}; groundup speaks {', '.join(SUPPORTED_VERSIONS)}")
        self.version = version
        self.transport.protocol_version = version
        self._adopt(res)
        self.notify("notifications/initialized")

    def _adopt(self, res: dict[str, Any]) -> None:
        self.capabilities = res.get("capabilities") or {}
        self.server_info = (res.get("serverInfo")
                            or (res.get("_meta") or {}).get("io.modelcontextprotocol/serverInfo")
                            or {})
        self.instructions = res.get("instructions")

    def close(self) -> None:
        self.dead = self.dead or "closed"
        self.transport.close()

    # ------------------------------------------------------------ requests

    def request(self, method: str, params: dict[str, Any] | None = None,
                timeout: float | None = None, on_progress: Progress | None = None,
                headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Send a request, wait for its result (raises RPCError for an error response)."""
        if self.dead is not None:
            self.reconnect()
        for attempt in range(2):
            params_v = with_meta(params, request_meta(self.version)) if self.modern else dict(params or {})
            try:
                res = self._send_request(method, params_v, timeout, on_progress, headers)
                break
            except SessionExpired:
                if attempt:
                    raise
                self._initialize(self.version or LATEST_LEGACY)   # 404: start a new session
        if result_type(res) != "complete":
            raise McpError(f"MCP server {self.name!r} asked for more input before answering "
                           f"{method} (resultType {result_type(res)!r}): groundup's client does "
                           "not offer elicitation, sampling or roots")
        return res

    def reconnect(self) -> None:
        reason = self.dead
        try:
            self.transport.close()
            self.connect()
        except McpError as e:
            raise McpError(f"{reason}; restarting it failed: {e}") from None

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        self._send(Notification(method, params or {}))

    def _send(self, msg: jsonrpc.Message, headers: dict[str, str] | None = None) -> None:
        if self.trace is not None:
            self.trace("send", msg.to_dict())
        self.transport.send(msg, headers)

    def _send_request(self, method: str, params: dict[str, Any], timeout: float | None = None,
                      on_progress: Progress | None = None,
                      headers: dict[str, str] | None = None) -> dict[str, Any]:
        rid = next(self._ids)
        slot = _Pending(method, on_progress=on_progress)
        if on_progress is not None:
            params = with_meta(params, {"progressToken": rid})
        with self._lock:
            self._pending[rid] = slot
        timeout = self.timeout if timeout is None else timeout
        started = time.monotonic()
        try:
            self._send(Request(rid, method, params), headers)
            while not slot.done.wait(0.05):
                now = time.monotonic()
                idle_over = now - slot.last_activity > timeout
                if idle_over or now - started > timeout * MAX_TIMEOUT_FACTOR:
                    self.cancel(rid, f"timed out after {timeout:g} s")
                    raise Timeout(f"MCP server {self.name!r} did not answer {method} within "
                                  f"{timeout:g} s; the request was cancelled")
        except KeyboardInterrupt:
            self.cancel(rid, "interrupted by the user")
            raise
        finally:
            with self._lock:
                self._pending.pop(rid, None)
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    def cancel(self, request_id: jsonrpc.Id, reason: str) -> None:
        with self._lock:
            self._pending.pop(request_id, None)
        if self.dead is not None or self.transport.cancel(request_id):
            return
        try:
            self.notify("notifications/cancelled", {"requestId": request_id, "reason": reason})
        except McpError:
            pass                          # the server is gone: nothing left to cancel

    # ------------------------------------------------------------ what the transport delivers

    def message(self, msg: jsonrpc.Message) -> None:
        if self.trace is not None:
            self.trace("recv", msg.to_dict())
        if isinstance(msg, Response):
            with self._lock:
                slot = self._pending.get(msg.id) if msg.id is not None else None
            if slot is not None:
                slot.result, slot.error = msg.result, msg.error
                slot.done.set()
        elif isinstance(msg, Notification):
            self._notification(msg)
        else:
            self._server_request(msg)

    def _notification(self, msg: Notification) -> None:
        if msg.method == "notifications/progress":
            token = msg.params.get("progressToken")
            with self._lock:
                slot = self._pending.get(token)    # our token is the request id
            if slot is not None:
                slot.last_activity = time.monotonic()
                if slot.on_progress is not None:
                    slot.on_progress(msg.params.get("progress", 0), msg.params.get("total"),
                                     msg.params.get("message"))
        elif msg.method == "notifications/message" and self.on_log is not None:
            self.on_log(msg.params)
        elif msg.method == "notifications/tools/list_changed":
            self.tools_changed = True

    def _server_request(self, msg: Request) -> None:
        """2025 servers may ask the client things; we answer ping and refuse the rest
        (we declared no capabilities, so a well-behaved server asks nothing else)."""
        if msg.method == "ping":
            reply = Response(msg.id, result={})
        else:
            reply = jsonrpc.error_response(msg.id, jsonrpc.METHOD_NOT_FOUND,
                                           f"groundup's client does not support {msg.method}")
        try:
            self._send(reply)
        except McpError:
            pass

    def request_failed(self, request_id: jsonrpc.Id, error: Exception) -> None:
        with self._lock:
            slot = self._pending.get(request_id)
        if slot is not None:
            slot.error = error
            slot.done.set()

    def closed(self, reason: str) -> None:
        self.dead = reason
        with self._lock:
            slots = list(self._pending.values())
        for slot in slots:
            slot.error = McpError(reason)
            slot.done.set()

    # ------------------------------------------------------------ the server's features

    def _list(self, method: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_PAGES):        # a paginator that never ends cannot hang us
            res = self.request(method, {"cursor": cursor} if cursor else {})
            items.extend(res.get(key) or [])
            cursor = res.get("nextCursor")
            if not cursor:
                break
        return items

    @property
    def mirrors_params(self) -> bool:
        """2026-07-28 over HTTP: tool arguments marked x-mcp-header travel as headers too."""
        return self.modern and isinstance(self.transport, HttpTransport)

    def list_tools(self) -> list[dict[str, Any]]:
        self.tools_changed = False
        tools = self._list("tools/list", "tools") if "tools" in self.capabilities else []
        kept = []
        for t in tools:
            schema = t.get("inputSchema") if isinstance(t.get("inputSchema"), dict) else {}
            if self.mirrors_params:
                try:
                    param_headers(schema)
                except ValueError as e:   # the spec: exclude the tool, keep the others
                    self.rejected[str(t.get("name"))] = str(e)
                    continue
            self.schemas[str(t.get("name"))] = schema
            kept.append(t)
        return kept

    def call_tool(self, name: str, arguments: dict[str, Any], timeout: float | None = None,
                  on_progress: Progress | None = None) -> dict[str, Any]:
        headers = (param_header_values(self.schemas.get(name) or {}, arguments)
                   if self.mirrors_params else None)
        return self.request("tools/call", {"name": name, "arguments": arguments}, timeout,
                            on_progress, headers)

    def list_resources(self) -> list[dict[str, Any]]:
        return self._list("resources/list", "resources") if "resources" in self.capabilities else []

    def read_resource(self, uri: str) -> dict[str, Any]:
        return self.request("resources/read", {"uri": uri})

    def list_prompts(self) -> list[dict[str, Any]]:
        return self._list("prompts/list", "prompts") if "prompts" in self.capabilities else []

    def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> dict[str, Any]:
        return self.request("prompts/get", {"name": name, "arguments": arguments or {}})
