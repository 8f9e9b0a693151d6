"""JSON-RPC 2.0, the envelope every MCP message travels in.

Three shapes go over the wire, one JSON object each:

    request       {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {...}}
    notification  {"jsonrpc": "2.0", "method": "notifications/progress", "params": {...}}
    response      {"jsonrpc": "2.0", "id": 7, "result": {...}}
                  {"jsonrpc": "2.0", "id": 7, "error": {"code": -32601, "message": "..."}}

A request expects exactly one response with the same id; a notification expects none.
`parse` turns a line or body into a `Message`, or raises `RPCError` carrying the error code
the peer should get back (-32700 not JSON, -32600 not a valid message).

Design choices:
- Plain dataclasses, no schema library: the whole envelope is four fields, and reading the
  checks below is the fastest way to learn what "valid" means.
- Batches (a JSON array of messages) were allowed only by the 2025-03-26 revision and removed
  in 2025-06-18. `parse` refuses them with -32600 unless the caller says they are allowed
  (`allow_batch`), and then returns a list.
- MCP tightens plain JSON-RPC in one place: a request id must be a string or an integer,
  never null (and we also refuse floats and booleans, which JSON-RPC discourages).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Union

PARSE_ERROR = -32700          # the bytes are not JSON
INVALID_REQUEST = -32600      # JSON, but not a valid JSON-RPC message
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# MCP's own codes (2026-07-28 allocates -32020..-32099 to the specification)
RESOURCE_NOT_FOUND_LEGACY = -32002       # 2025-11-25 and earlier; 2026-07-28 uses -32602
HEADER_MISMATCH = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022

Id = Union[str, int]


class RPCError(Exception):
    """An error that becomes (or came from) a JSON-RPC error response."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def to_dict(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err

    def __str__(self) -> str:
        return f"{self.message} (JSON-RPC error {self.code})"


@dataclass
class Request:
    id: Id
    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": self.id, "method": self.method}
        if self.params:
            msg["params"] = self.params
        return msg


@dataclass
class Notification:
    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": self.method}
        if self.params:
            msg["params"] = self.params
        return msg


@dataclass
class Response:
    id: Id | None                     # None only for an error about an unreadable request
    result: dict[str, Any] | None = None
    error: RPCError | None = None

    def to_dict(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": self.id}
        if self.error is not None:
            msg["error"] = self.error.to_dict()
        else:
            msg["result"] = self.result if self.result is not None else {}
        return msg


Message = Union[Request, Notification, Response]


def encode(msg: Message | list[Message]) -> str:
    """One line of JSON (no embedded newline: json.dumps escapes them inside strings)."""
    if isinstance(msg, list):
        return json.dumps([m.to_dict() for m in msg], ensure_ascii=False, separators=(",", ":"))
    return json.dumps(msg.to_dict(), ensure_ascii=False, separators=(",", ":"))


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def from_dict(obj: Any) -> Message:
    """Classify one decoded JSON value as a message, or raise RPCError(-32600)."""
    if not isinstance(obj, dict):
        raise RPCError(INVALID_REQUEST, "a JSON-RPC message must be a JSON object")
    if obj.get("jsonrpc") != "2.0":
        raise RPCError(INVALID_REQUEST, 'the "jsonrpc" member must be exactly "2.0"')
    params = obj.get("params", {})
    if params is None:
        params = {}
    if "method" in obj:
        if not isinstance(obj["method"], str) or not obj["method"]:
            raise RPCError(INVALID_REQUEST, '"method" must be a non-empty string')
        if not isinstance(params, dict):
            # JSON-RPC allows positional (array) params; MCP only ever uses an object
            raise RPCError(INVALID_REQUEST, '"params" must be a JSON object in MCP')
        if "id" not in obj:
            return Notification(obj["method"], params)
        if not _valid_id(obj["id"]):
            raise RPCError(INVALID_REQUEST, "a request id must be a string or an integer (not null)")
        return Request(obj["id"], obj["method"], params)
    if "result" in obj or "error" in obj:
        if ("result" in obj) == ("error" in obj):
            raise RPCError(INVALID_REQUEST, 'a response has either "result" or "error", not both')
        rid = obj.get("id")
        if "error" in obj:
            err = obj["error"]
            if not isinstance(err, dict) or not isinstance(err.get("code"), int):
                raise RPCError(INVALID_REQUEST, 'an "error" must be an object with an integer "code"')
            return Response(rid if _valid_id(rid) else None,
                            error=RPCError(err["code"], str(err.get("message", "")), err.get("data")))
        if not _valid_id(rid):
            raise RPCError(INVALID_REQUEST, "a response id must be a string or an integer")
        result = obj["result"]
        if not isinstance(result, dict):
            raise RPCError(INVALID_REQUEST, 'an MCP "result" must be a JSON object')
        return Response(rid, result=result)
    raise RPCError(INVALID_REQUEST, 'a message needs "method" (request or notification) '
                                    'or "result"/"error" (response)')


def parse(text: str | bytes, allow_batch: bool = False) -> Message | list[Message]:
    """Decode one message (or, where allowed, a batch) from a line or HTTP body."""
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RPCError(PARSE_ERROR, f"parse error: not valid JSON ({e})") from None
    if isinstance(obj, list):
        if not allow_batch:
            raise RPCError(INVALID_REQUEST, "JSON-RPC batches are not supported in this protocol "
                                            "revision (removed in 2025-06-18): send one message")
        if not obj:
            raise RPCError(INVALID_REQUEST, "an empty batch is not a valid request")
        return [from_dict(o) for o in obj]
    return from_dict(obj)


def error_response(request_id: Id | None, code: int, message: str, data: Any = None) -> Response:
    return Response(request_id, error=RPCError(code, message, data))
