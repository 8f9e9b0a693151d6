"""Our server (`groundup mcp serve`) driven by the official SDK's client, over stdio and
Streamable HTTP, in both revisions the SDK speaks (2026-07-28 and 2025-11-25)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest

from mcp_testlib import PY, free_port, wait_port

pytest.importorskip("mcp", reason="the official MCP SDK (a test peer) is not installed")
from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

SECRET = "TOP-SECRET-OUTSIDE"
MODES = ["legacy", "2026-07-28"]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "outside.txt").write_text(SECRET + "\n")
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "a.txt").write_text("hello\nworld\n")
    (ws / "src" / "m.py").write_text("def needle():\n    return 42\n")
    (ws / "link.txt").symlink_to(tmp_path / "outside.txt")      # points outside the root
    return ws


async def exercise(client: Client, ws: Path) -> None:
    names = [t.name for t in (await client.list_tools()).tools]
    assert names == ["read_file", "grep", "glob", "list_dir"]
    r = await client.call_tool("read_file", {"path": "a.txt"})
    assert not r.is_error and r.content[0].text == "     1\thello\n     2\tworld"
    r = await client.call_tool("grep", {"pattern": "needle"})
    assert r.content[0].text == "src/m.py:1:def needle():"
    resources = {x.name: str(x.uri) for x in (await client.list_resources()).resources}
    assert set(resources) == {"a.txt", "src/m.py"}              # the link is not listed
    read = await client.read_resource(resources["src/m.py"])
    assert read.contents[0].text == "def needle():\n    return 42\n"
    # outside the root: a tool error, and nothing of the outside in it
    for path in ("../outside.txt", str(ws.parent / "outside.txt"), "link.txt"):
        r = await client.call_tool("read_file", {"path": path})
        assert r.is_error and "outside the workspace" in r.content[0].text
        assert SECRET not in r.content[0].text
    with pytest.raises(Exception) as e:
        await client.read_resource((ws.parent / "outside.txt").as_uri())
    assert SECRET not in str(e.value)


def serve_args(ws: Path, *extra: str) -> list[str]:
    return ["-m", "groundup", "mcp", "serve", "--root", str(ws), *extra]


@pytest.mark.parametrize("mode", MODES)
def test_sdk_client_over_stdio(workspace, mode):
    async def main():
        params = StdioServerParameters(command=PY, args=serve_args(workspace), cwd=str(workspace))
        async with Client(params, mode=mode) as client:
            await exercise(client, workspace)
    anyio.run(main)


@pytest.fixture
def http_server(workspace):
    port = free_port()
    env = dict(os.environ, GROUNDUP_MCP_TOKEN="tok-123")
    proc = subprocess.Popen([PY, *serve_args(workspace, "--transport", "http", "--port", str(port))],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("mode", MODES)
def test_sdk_client_over_http(workspace, http_server, mode):
    async def main():
        http = httpx.AsyncClient(headers={"Authorization": "Bearer tok-123"})
        from mcp.client.streamable_http import streamable_http_client
        async with Client(streamable_http_client(http_server, http_client=http), mode=mode) as client:
            await exercise(client, workspace)
    anyio.run(main)


def test_http_gates(http_server):
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}
    auth = {"Authorization": "Bearer tok-123"}
    r = httpx.post(http_server, json=body)                      # no token: 401, nothing else
    assert r.status_code == 401 and r.content == b"" and "mcp-session-id" not in r.headers
    r = httpx.post(http_server, json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = httpx.post(http_server, json=body, headers={**auth, "Origin": "http://evil.example.com"})
    assert r.status_code == 403                                  # DNS rebinding
    r = httpx.post(http_server, json=body, headers={**auth, "Origin": "http://localhost:3000"})
    assert r.status_code == 200 and r.json()["result"]["protocolVersion"] == "2025-11-25"
    sid = r.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    r = httpx.post(http_server, json=listing, headers=auth)      # no session
    assert r.status_code == 400
    r = httpx.post(http_server, json=listing, headers={**auth, "Mcp-Session-Id": sid})
    assert r.status_code == 200 and len(r.json()["result"]["tools"]) == 4
    assert httpx.request("DELETE", http_server, headers={**auth, "Mcp-Session-Id": sid}).status_code == 200
    r = httpx.post(http_server, json=listing, headers={**auth, "Mcp-Session-Id": sid})
    assert r.status_code == 404                                  # ended: initialize again
    assert httpx.get(http_server, headers=auth).status_code == 405
    # 2026-07-28: mirrored headers must agree with the body
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "list_dir", "arguments": {"path": "."}, "_meta": meta}}
    modern = {**auth, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call"}
    r = httpx.post(http_server, json=call, headers={**modern, "Mcp-Name": "read_file"})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32020
    r = httpx.post(http_server, json=call, headers={**modern, "Mcp-Name": "list_dir"})
    assert r.status_code == 200 and r.json()["result"]["resultType"] == "complete"
    bad = {**call, "params": {**call["params"], "_meta": {**meta, "io.modelcontextprotocol/protocolVersion": "1999-01-01"}}}
    r = httpx.post(http_server, json=bad, headers={**modern, "Mcp-Name": "list_dir",
                                                    "MCP-Protocol-Version": "1999-01-01"})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32022
    assert "2026-07-28" in r.json()["error"]["data"]["supported"]


def test_our_client_reinitializes_after_the_session_expires(workspace, http_server):
    from groundup.mcp.client import Client as OurClient
    from groundup.mcp.streamable_http import HttpTransport
    auth = {"Authorization": "Bearer tok-123"}
    t = HttpTransport("self", http_server, auth)
    c = OurClient("self", t, version="2025-11-25").connect()
    try:
        first = t.session_id
        assert httpx.request("DELETE", http_server, headers={**auth, "Mcp-Session-Id": first}).status_code == 200
        res = c.call_tool("list_dir", {"path": "."})     # 404 → initialize again → retried
        assert "a.txt" in res["content"][0]["text"] and t.session_id not in (None, first)
    finally:
        c.close()


def test_allow_writes_obeys_the_permission_rules(workspace):
    from groundup.mcp.client import Client as OurClient
    from groundup.mcp.stdio import StdioTransport
    (workspace / ".groundup").mkdir()
    (workspace / ".groundup" / "settings.json").write_text(
        '{"permissions": {"deny": ["edit(secret/**)"]}}')
    c = OurClient("self", StdioTransport("self", PY, serve_args(
        workspace, "--allow-writes", "--permission-mode", "accept-edits"))).connect()
    try:
        names = [t["name"] for t in c.list_tools()]
        assert set(names) == {"read_file", "grep", "glob", "list_dir", "edit_file", "write_file", "bash"}
        r = c.call_tool("write_file", {"path": "new.txt", "content": "made over MCP\n"})
        assert not r["isError"] and (workspace / "new.txt").read_text() == "made over MCP\n"
        r = c.call_tool("write_file", {"path": "secret/x.txt", "content": "no"})
        assert r["isError"] and "denied by the rule edit(secret/**)" in r["content"][0]["text"]
        r = c.call_tool("bash", {"command": "touch pwned"})       # accept-edits: bash still asks
        assert r["isError"] and "needs the user's approval" in r["content"][0]["text"]
        assert not (workspace / "pwned").exists() and not (workspace / "secret").exists()
    finally:
        c.close()
