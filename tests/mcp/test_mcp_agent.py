"""The agent with MCP servers from `.mcp.json`: a scripted model calls a server written with
the official SDK through `groundup -p`, and the stream-json output shows the calls."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "agent"))
from agent_testlib import BUGGY, call, make_repo, run_cli, script, turn  # noqa: E402
from mcp_testlib import PY, SDK_SERVER  # noqa: E402

from groundup.agent.permissions import Permissions, Rule  # noqa: E402

pytest.importorskip("mcp", reason="the official MCP SDK (a test peer) is not installed")


def mcp_json(repo: Path, **extra) -> None:
    servers = {"sdk": {"command": PY, "args": [SDK_SERVER, "stdio"], "timeout": 3},
               "broken": {"command": "no-such-mcp-server-binary"}, **extra}
    (repo / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))


def events_of(p) -> list[dict]:
    return [json.loads(line) for line in p.stdout.splitlines()]


def test_agent_calls_an_sdk_server_and_survives_failures(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    mcp_json(repo)
    model = script(tmp_path / "s.jsonl", [
        turn(call("mcp__sdk__add", a=20, b=22)),
        turn(call("mcp__sdk__nap", seconds=60)),                   # past the 3 s timeout
        turn(call("mcp__sdk__weather", city="Oslo"), call("mcp__sdk__fail", reason="no")),
        turn(call("read_mcp_resource", server="sdk", uri="note://greeting")),
        {"content": "done"}])
    p = run_cli(["-p", "use the tools @sdk:note://greeting", "--model", model,
                 "--allow", "mcp__sdk", "--output-format", "stream-json"], repo, tmp_path,
                timeout=120)
    assert p.returncode == 0, p.stderr
    # the broken server is reported, by name and why, and the others still work
    assert "MCP server 'broken' is not available" in p.stderr
    assert "command not found: no-such-mcp-server-binary" in p.stderr
    events = events_of(p)
    tools = events[0]["tools"]
    assert {"mcp__sdk__add", "mcp__sdk__weather", "read_mcp_resource"} <= set(tools)
    assert not any(t.startswith("mcp__broken") for t in tools)
    results = [e for e in events if e["type"] == "tool_result"]
    by_name = {r["name"]: r for r in results}
    assert by_name["mcp__sdk__add"]["content"] == "20 + 22 = 42"
    assert by_name["mcp__sdk__nap"]["is_error"]
    assert "did not answer tools/call within 3 s" in by_name["mcp__sdk__nap"]["content"]
    assert json.loads(by_name["mcp__sdk__weather"]["content"]) == {"city": "Oslo", "temperature": 21.5}
    assert by_name["mcp__sdk__fail"]["is_error"]
    assert by_name["read_mcp_resource"]["content"] == "hello from the SDK server"
    assert events[-1]["result"] == "done"
    # the @sdk:URI mention attached the resource to the task the model saw
    session = next((repo / ".groundup" / "sessions").glob("*.jsonl"))
    user = next(json.loads(line) for line in session.read_text().splitlines()
                if json.loads(line).get("role") == "user")
    assert '<resource server="sdk" uri="note://greeting">\nhello from the SDK server' in user["content"]
    system = next(json.loads(line) for line in session.read_text().splitlines()
                  if json.loads(line).get("role") == "system")
    assert "Add two integers" not in system["content"]       # server words stay out of it


def test_deny_rule_and_default_mode_refuse_mcp_tools(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    mcp_json(repo)
    (repo / ".groundup").mkdir()
    (repo / ".groundup" / "settings.json").write_text(json.dumps(
        {"permissions": {"allow": ["mcp__sdk__*"], "deny": ["mcp__sdk__add"]}}))
    model = script(tmp_path / "s.jsonl", [
        turn(call("mcp__sdk__add", a=1, b=2), call("mcp__sdk__weather", city="Rome")),
        {"content": "done"}])
    p = run_cli(["-p", "go", "--model", model, "--output-format", "stream-json"], repo, tmp_path,
                timeout=120)
    results = {e["name"]: e for e in events_of(p) if e["type"] == "tool_result"}
    assert "mcp__sdk__add" in events_of(p)[0]["tools"], p.stderr
    assert results["mcp__sdk__add"]["is_error"]
    assert "denied by the rule mcp__sdk__add" in results["mcp__sdk__add"]["content"]
    assert not results["mcp__sdk__weather"]["is_error"]
    # without an allow rule, headless default mode refuses (an MCP tool asks before it runs)
    (repo / ".groundup" / "settings.json").write_text("{}")
    p = run_cli(["-p", "go", "--model", model, "--output-format", "stream-json"], repo, tmp_path,
                timeout=120)
    results = {e["name"]: e for e in events_of(p) if e["type"] == "tool_result"}
    assert "mcp__sdk__weather" in events_of(p)[0]["tools"], p.stderr
    assert "needs the user's approval" in results["mcp__sdk__weather"]["content"]
    assert "allow rule such as mcp__sdk__weather" in results["mcp__sdk__weather"]["content"]


def test_mcp_rules_match_servers_and_tools():
    p = Permissions(mode="default", allow=["mcp__files"], deny=["mcp__files__rm*", "mcp__web__*"])
    assert Rule.parse("mcp__files__readText").family == "mcp__files__readText"   # case kept
    assert p.decide("mcp__files__read", {}, None, "").allowed
    assert not p.decide("mcp__files__rm_all", {}, None, "").allowed
    assert not p.decide("mcp__web__get", {}, None, "").allowed
    assert not p.decide("mcp__filesystem__read", {}, None, "").allowed   # another server


def test_mcp_tools_prompts_resources_and_read_only_trust(tmp_path):
    from groundup.agent.mcp_tools import McpTools
    from groundup.mcp.config import parse_servers
    servers = parse_servers({"sdk": {"command": PY, "args": [SDK_SERVER, "stdio"]}}, "test")
    tools = McpTools(servers, cwd=str(tmp_path)).start()
    try:
        assert tools.prompt_command("/mcp__sdk__review", "src/a.py") == \
            "Please review src/a.py and list its bugs."
        assert tools.prompt_command("/mcp__sdk__review", "path=b.py").endswith("review b.py and list its bugs.")
        assert "sdk  note://greeting  (text/plain) -- A short text resource." in tools.list_resources_text()
        assert tools.expand_mentions("mail me@example.com") == "mail me@example.com"
        names = [s["name"] for s in tools.schemas()]
        assert "mcp__sdk__add" in names and not tools.is_read_only("mcp__sdk__add")
        assert tools.is_read_only("read_mcp_resource")
        assert not tools.is_read_only("mcp__sdk__weather")     # annotated, but not trusted
        tools.trusted.add("sdk")                                # mcp_trust_read_only: ["sdk"]
        assert tools.is_read_only("mcp__sdk__weather") and not tools.is_read_only("mcp__sdk__add")
        assert tools.status_lines() == [f"sdk  connected  stdio {PY} {SDK_SERVER} stdio  8 tools"]
        # lookup.item and lookup_item both sanitise to mcp__sdk__lookup_item: the later one is
        # told apart by a hash, and each name reaches its own tool
        twins = [n for n in names if n.startswith("mcp__sdk__lookup_item")]
        assert len(twins) == 2 and len(set(twins)) == 2 and len(names) == len(set(names))
        answers = sorted(tools.call(n, {"key": "k"}).content for n in twins)
        assert answers == ["dotted k", "underscored k"]
        assert [s["name"] for s in tools.schemas()] == names      # the same names every listing
    finally:
        tools.close()


def test_results_become_text_the_model_can_read():
    from groundup.agent.mcp_tools import cap, render_result, tool_name
    from groundup.agent.tools import READ_MAX_CHARS
    res = {"content": [{"type": "text", "text": "two blocks"},
                       {"type": "image", "data": "AAAA", "mimeType": "image/png"},
                       {"type": "resource_link", "uri": "file:///x.py", "name": "x.py"},
                       {"type": "resource", "resource": {"uri": "note://n", "text": "embedded"}}]}
    assert render_result(res) == ("two blocks\n[image: image/png, about 3 bytes, not shown as text]\n"
                                  "[resource link: file:///x.py (x.py); read it with read_mcp_resource]\n"
                                  "embedded")
    assert render_result({"content": [], "structuredContent": {"t": 1}}) == '{\n "t": 1\n}'
    big = cap("x" * (READ_MAX_CHARS + 10))
    assert big.endswith(f"[output truncated: {READ_MAX_CHARS} of {READ_MAX_CHARS + 10} characters shown]")
    assert tool_name("srv", "weird tool/name") == "mcp__srv__weird_tool_name"
    assert len(tool_name("s", "x" * 100)) == 64
