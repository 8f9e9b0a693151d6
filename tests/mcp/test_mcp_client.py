"""Our client against a server written with the official MCP SDK, over stdio and HTTP, in
both eras (2026-07-28 found by the server/discover probe; 2025-11-25 by initialize)."""

from __future__ import annotations

import signal
import time

import pytest

from groundup.mcp.client import Client, Timeout
from groundup.mcp.jsonrpc import RPCError
from groundup.mcp.errors import McpError
from groundup.mcp.stdio import StdioTransport
from groundup.mcp.streamable_http import HttpTransport
from mcp_testlib import PY, SDK_SERVER, sdk_http_server

pytest.importorskip("mcp", reason="the official MCP SDK (a test peer) is not installed")


def stdio_client(version=None, **kw):
    return Client("sdk", StdioTransport("sdk", PY, [SDK_SERVER, "stdio"]), version=version, **kw)


def exercise(c: Client, modern: bool) -> None:
    """Everything a server offers, checked against what the SDK server defines."""
    assert c.modern is modern
    assert c.server_info["name"] == "sdk-test-server"
    tools = {t["name"]: t for t in c.list_tools()}
    assert {"add", "weather", "count", "nap", "die", "fail"} <= set(tools)
    assert tools["weather"]["outputSchema"]["properties"]["temperature"]["type"] == "number"
    res = c.call_tool("add", {"a": 2, "b": 40})
    assert res["content"][0]["text"] == "2 + 40 = 42" and not res.get("isError")
    res = c.call_tool("weather", {"city": "Oslo"})
    assert res["structuredContent"] == {"city": "Oslo", "temperature": 21.5}
    seen = []
    res = c.call_tool("count", {"steps": 3}, on_progress=lambda p, t, m: seen.append((p, t, m)))
    assert res["content"][0]["text"] == "counted to 3"
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    res = c.call_tool("fail", {"reason": "x"})
    assert res["isError"] and res["content"][0]["text"]
    try:                                   # the SDK answers an unknown tool as a tool error
        assert c.call_tool("no_such_tool", {})["isError"]
    except RPCError as e:                  # which the spec would also allow as -32602
        assert e.code == -32602
    [r] = c.list_resources()
    assert r["uri"] == "note://greeting"
    assert c.read_resource("note://greeting")["contents"][0]["text"] == "hello from the SDK server"
    [p] = c.list_prompts()
    msgs = c.get_prompt("review", {"path": "a.py"})["messages"]
    assert p["name"] == "review" and "review a.py" in msgs[0]["content"]["text"]


@pytest.mark.parametrize("version,modern", [(None, True), ("2025-11-25", False)])
def test_stdio_both_revisions(version, modern):
    sent = []
    c = stdio_client(version, trace=lambda d, m: sent.append((d, m)))
    c.connect()
    try:
        exercise(c, modern)
    finally:
        c.close()
    methods = [m.get("method") for d, m in sent if d == "send"]
    if modern:
        assert methods[0] == "server/discover" and "initialize" not in methods
        call = next(m for d, m in sent if d == "send" and m.get("method") == "tools/call")
        assert call["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
    else:
        assert methods[:2] == ["initialize", "notifications/initialized"]
        assert c.version == "2025-11-25"


@pytest.mark.parametrize("version,modern", [(None, True), ("2025-11-25", False)])
def test_http_both_revisions(version, modern):
    with sdk_http_server() as url:
        t = HttpTransport("sdk", url)
        c = Client("sdk", t, version=version).connect()
        try:
            exercise(c, modern)
            assert (t.session_id is not None) is (not modern)   # sessions only in 2025
        finally:
            c.close()


def test_timeout_cancels_on_the_server_and_the_connection_goes_on(tmp_path, monkeypatch):
    log = tmp_path / "nap.log"
    monkeypatch.setenv("NAP_LOG", str(log))
    c = stdio_client().connect()
    try:
        started = time.monotonic()
        with pytest.raises(Timeout, match="did not answer tools/call within 0.5 s"):
            c.call_tool("nap", {"seconds": 30}, timeout=0.5)
        assert time.monotonic() - started < 10
        assert c.call_tool("add", {"a": 1, "b": 1})["content"][0]["text"] == "1 + 1 = 2"
        for _ in range(100):               # the server heard notifications/cancelled
            if log.exists() and "cancelled" in log.read_text():
                break
            time.sleep(0.05)
        assert log.read_text() == "cancelled\n"
    finally:
        c.close()


def test_http_timeout_closes_the_stream():
    with sdk_http_server() as url:
        c = Client("sdk", HttpTransport("sdk", url)).connect()
        try:
            with pytest.raises(Timeout):
                c.call_tool("nap", {"seconds": 30}, timeout=0.5)
            assert c.call_tool("add", {"a": 2, "b": 2})["content"][0]["text"] == "2 + 2 = 4"
        finally:
            c.close()


def test_a_server_that_exits_mid_call_fails_the_call_then_restarts():
    c = stdio_client().connect()
    try:
        with pytest.raises(McpError) as e:
            c.call_tool("die", {})
        assert "'sdk' exited (exit code 3)" in str(e.value)
        assert "about to exit mid-call" in str(e.value)           # its stderr, for the user
        assert c.call_tool("add", {"a": 3, "b": 4})["content"][0]["text"] == "3 + 4 = 7"
    finally:
        c.close()


def test_junk_on_stdout_is_a_clear_error(tmp_path):
    bad = tmp_path / "noisy.py"
    bad.write_text("import sys\nprint('Server starting on stdio...')\nsys.stdout.flush()\n"
                   "sys.stdin.read()\n")
    c = Client("noisy", StdioTransport("noisy", PY, [str(bad)]), connect_timeout=10)
    with pytest.raises(McpError) as e:
        c.connect()
    msg = str(e.value)
    assert "'noisy' wrote something that is not a JSON-RPC message on stdout" in msg
    assert "Server starting on stdio..." in msg and "log to stderr" in msg


def test_a_command_that_does_not_exist():
    c = Client("ghost", StdioTransport("ghost", "no-such-mcp-server-binary"))
    with pytest.raises(McpError, match="'ghost': command not found: no-such-mcp-server-binary"):
        c.connect()


def test_ctrl_c_cancels_the_call_on_the_server(tmp_path, monkeypatch):
    import _thread
    import threading
    log = tmp_path / "nap.log"
    monkeypatch.setenv("NAP_LOG", str(log))
    # Python's own Ctrl-C handler, even when the tests were started with SIGINT ignored (a
    # background job): interrupt_main does nothing for an ignored signal
    old_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    c = stdio_client().connect()
    try:
        threading.Timer(1.0, _thread.interrupt_main).start()      # Ctrl-C, one second in
        with pytest.raises(KeyboardInterrupt):
            c.call_tool("nap", {"seconds": 30})
        for _ in range(100):
            if log.exists():
                break
            time.sleep(0.05)
        assert log.read_text() == "cancelled\n"                   # the server was told
        assert c.call_tool("add", {"a": 5, "b": 5})["content"][0]["text"] == "5 + 5 = 10"
    finally:
        c.close()
        signal.signal(signal.SIGINT, old_handler)


def test_http_errors_are_clear(tmp_path):
    """A server that answers 500 (or HTML, or 401) gives an error naming it and the status."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Broken(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            status = 401 if self.headers.get("Authorization") is None else 500
            body = b"<html>Internal Server Error</html>"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/mcp"
    try:
        with pytest.raises(McpError, match=r"'b': HTTP 401 .*check the Authorization header"):
            Client("b", HttpTransport("b", url)).connect()
        with pytest.raises(McpError, match=r"'b': HTTP 500 from .*Internal Server Error"):
            Client("b", HttpTransport("b", url, {"Authorization": "Bearer x"})).connect()
    finally:
        httpd.shutdown()
