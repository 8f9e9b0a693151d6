"""The JSON-RPC envelope and the server configuration: what is valid, what is refused."""

from __future__ import annotations

import json

import pytest

from groundup.errors import UserError
from groundup.mcp import jsonrpc
from groundup.mcp.config import load_servers, parse_server, write_server
from groundup.mcp.jsonrpc import Notification, Request, Response, RPCError, parse
from groundup.mcp.streamable_http import header_value


def test_the_three_shapes_round_trip():
    for msg in (Request(7, "tools/call", {"name": "x"}), Request("a", "ping"),
                Notification("notifications/progress", {"progress": 1}),
                Response(7, result={"ok": True}),
                jsonrpc.error_response(7, -32601, "no such method")):
        back = parse(jsonrpc.encode(msg))
        assert back.to_dict() == msg.to_dict()
        assert "\n" not in jsonrpc.encode(Request(1, "m", {"text": "a\nb"}))


@pytest.mark.parametrize("text,code", [
    ("{not json", jsonrpc.PARSE_ERROR),
    ('{"jsonrpc": "1.0", "id": 1, "method": "m"}', jsonrpc.INVALID_REQUEST),
    ('{"jsonrpc": "2.0", "id": null, "method": "m"}', jsonrpc.INVALID_REQUEST),
    ('{"jsonrpc": "2.0", "id": 1.5, "method": "m"}', jsonrpc.INVALID_REQUEST),
    ('{"jsonrpc": "2.0", "id": true, "method": "m"}', jsonrpc.INVALID_REQUEST),
    ('{"jsonrpc": "2.0", "id": 1, "method": "m", "params": [1, 2]}', jsonrpc.INVALID_REQUEST),
    ('{"jsonrpc": "2.0", "id": 1, "result": {}, "error": {"code": 1}}', jsonrpc.INVALID_REQUEST),
    ('{"jsonrpc": "2.0", "id": 1}', jsonrpc.INVALID_REQUEST),
    ('[{"jsonrpc": "2.0", "method": "m"}]', jsonrpc.INVALID_REQUEST),     # batches: removed
    ("42", jsonrpc.INVALID_REQUEST),
])
def test_invalid_messages_get_the_right_code(text, code):
    with pytest.raises(RPCError) as e:
        parse(text)
    assert e.value.code == code


def test_batches_only_where_allowed():
    batch = parse('[{"jsonrpc": "2.0", "id": 1, "method": "a"}, {"jsonrpc": "2.0", "method": "b"}]',
                  allow_batch=True)
    assert [type(m) for m in batch] == [Request, Notification]
    with pytest.raises(RPCError):
        parse("[]", allow_batch=True)


def test_header_values_use_the_base64_sentinel_when_unsafe():
    assert header_value("us-west1") == "us-west1"
    assert header_value(True) == "true" and header_value(42) == "42"
    # the examples of streamable-http.mdx, "Value Encoding"
    assert header_value("Hello, 世界") == "=?base64?SGVsbG8sIOS4lueVjA==?="
    assert header_value(" padded ") == "=?base64?IHBhZGRlZCA=?="
    assert header_value("line1\nline2") == "=?base64?bGluZTEKbGluZTI=?="
    assert header_value("=?base64?literal?=") == "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="


def test_config_reads_the_claude_code_shape(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "s3cret")
    (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "srv", "${HOME_DIR:-/tmp}"], "env": {"A": "1"}},
        "web": {"type": "http", "url": "http://127.0.0.1:9/mcp",
                "headers": {"Authorization": "Bearer ${TOKEN}"}}}}))
    servers = load_servers([tmp_path / ".mcp.json"])
    assert servers["files"].args == ["-y", "srv", "/tmp"] and servers["files"].env == {"A": "1"}
    assert servers["web"].headers == {"Authorization": "Bearer s3cret"}
    assert servers["web"].transport == "http" and servers["files"].timeout == 60


@pytest.mark.parametrize("entry,needle", [
    ({"args": ["x"]}, 'needs "command"'),
    ({"type": "http"}, 'needs "url"'),
    ({"type": "sse", "url": "http://x"}, "HTTP+SSE transport of 2024-11-05"),
    ({"command": "x", "timeout": -1}, '"timeout" must be a positive number'),
    ({"command": "x", "args": "not a list"}, "must be a list of strings"),
    ({"command": "${NOT_SET_ANYWHERE_42}"}, "NOT_SET_ANYWHERE_42 is not set"),
])
def test_config_mistakes_are_user_errors(entry, needle):
    with pytest.raises(UserError, match="MCP server 'srv'") as e:
        parse_server("srv", entry, ".mcp.json")
    assert needle in str(e.value)
    with pytest.raises(UserError, match="letters, digits"):
        parse_server("a b", {"command": "x"}, ".mcp.json")


def test_write_server_keeps_other_keys(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"model": "replay:x", "mcpServers": {"old": {"command": "a"}}}))
    write_server(path, "new", {"type": "http", "url": "http://127.0.0.1:1/mcp",
                               "headers": {"Authorization": "Bearer ${LATER}"}})
    write_server(path, "old", None)
    data = json.loads(path.read_text())
    assert data["model"] == "replay:x" and list(data["mcpServers"]) == ["new"]


def test_server_batches_only_in_a_2025_03_26_session(tmp_path):
    """2025-03-26 servers MUST accept batches; from 2025-06-18 on they are refused (-32600)."""
    import io

    from groundup.mcp.server import McpServer, serve_stdio

    def session(version: str) -> list:
        lines = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": version, "capabilities": {},
                             "clientInfo": {"name": "t", "version": "1"}}},
                 [{"jsonrpc": "2.0", "id": 2, "method": "ping"},
                  {"jsonrpc": "2.0", "method": "notifications/initialized"},
                  {"jsonrpc": "2.0", "id": 3, "method": "nope"}]]
        out = io.BytesIO()
        serve_stdio(McpServer(tmp_path), io.BytesIO("".join(json.dumps(x) + "\n" for x in lines)
                                                    .encode()), out)
        return [json.loads(line) for line in out.getvalue().splitlines()]

    init, batch = session("2025-03-26")
    assert init["result"]["protocolVersion"] == "2025-03-26"
    assert batch == [{"jsonrpc": "2.0", "id": 2, "result": {}},
                     {"jsonrpc": "2.0", "id": 3, "error": {"code": -32601,
                                                          "message": "Method not found: nope"}}]
    init, refused = session("2025-06-18")
    assert init["result"]["protocolVersion"] == "2025-06-18"
    assert refused["id"] is None and refused["error"]["code"] == -32600
