"""`groundup mcp add/list/remove/tools/call`: the configuration files they write, and what
they print about real servers (the SDK's, and our own `groundup mcp serve`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "agent"))
from agent_testlib import run_cli  # noqa: E402
from mcp_testlib import PY, SDK_SERVER  # noqa: E402

pytest.importorskip("mcp", reason="the official MCP SDK (a test peer) is not installed")


def test_add_list_call_remove(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "notes.txt").write_text("alpha\nbeta\n")
    p = run_cli(["mcp", "add", "sdk", "--", PY, SDK_SERVER, "stdio"], ws, tmp_path)
    assert p.returncode == 0, p.stderr
    local = json.loads((ws / ".groundup" / "settings.local.json").read_text())
    assert local["mcpServers"]["sdk"] == {"command": PY, "args": [SDK_SERVER, "stdio"]}
    p = run_cli(["mcp", "add", "--scope", "project", "self", "--", PY, "-m", "groundup", "mcp",
                 "serve"], ws, tmp_path)
    assert json.loads((ws / ".mcp.json").read_text())["mcpServers"]["self"]["command"] == PY
    run_cli(["mcp", "add", "--transport", "http", "--scope", "user", "gone", "http://127.0.0.1:9/mcp",
             "--header", "Authorization: Bearer x"], ws, tmp_path)
    user = json.loads((tmp_path / "config" / "groundup" / "settings.json").read_text())
    assert user["mcpServers"]["gone"]["headers"] == {"Authorization": "Bearer x"}

    p = run_cli(["mcp", "list"], ws, tmp_path, timeout=120)
    rows = {line.split()[0]: line for line in p.stdout.splitlines()}
    assert "connected" in rows["sdk"] and rows["sdk"].endswith("8 tools")
    assert "connected" in rows["self"] and rows["self"].endswith("4 tools")
    assert "failed" in rows["gone"] and "cannot reach" in rows["gone"]

    p = run_cli(["mcp", "call", "self", "read_file", '{"path": "notes.txt"}'], ws, tmp_path)
    assert p.returncode == 0 and p.stdout == "     1\talpha\n     2\tbeta\n"
    p = run_cli(["mcp", "call", "self", "read_file", '{"path": "../x"}'], ws, tmp_path)
    assert p.returncode == 1 and "outside the workspace" in p.stdout
    p = run_cli(["mcp", "tools", "sdk"], ws, tmp_path)
    assert "protocol 2026-07-28" in p.stdout and "\nadd: Add two integers." in p.stdout

    assert run_cli(["mcp", "remove", "gone"], ws, tmp_path).returncode == 0
    assert "gone" not in json.loads((tmp_path / "config" / "groundup" / "settings.json").read_text())["mcpServers"]
    p = run_cli(["mcp", "remove", "gone"], ws, tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("groundup: error: no MCP server named 'gone'")


@pytest.mark.parametrize("args,needle", [
    (["mcp", "add", "x"], "usage: groundup mcp add NAME -- COMMAND"),
    (["mcp", "add", "bad name", "--", "cmd"], "letters, digits"),
    (["mcp", "add", "--transport", "http", "x", "ftp://host"], 'needs "url" starting with http'),
    (["mcp", "call", "nope", "t"], "no MCP server named 'nope'"),
    (["mcp", "serve", "--root", "does-not-exist"], "--root does-not-exist is not a directory"),
])
def test_mistakes_are_one_line(tmp_path, args, needle):
    p = run_cli(args, tmp_path, tmp_path)
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr


def test_a_broken_mcp_json_is_named(tmp_path):
    (tmp_path / ".mcp.json").write_text('{"mcpServers": {"a": {"type": "sse", "url": "http://x"}}}')
    p = run_cli(["mcp", "list"], tmp_path, tmp_path)
    assert p.returncode == 2 and ".mcp.json: MCP server 'a'" in p.stderr
