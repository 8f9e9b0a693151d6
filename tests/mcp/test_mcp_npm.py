"""The npm peers (slow: installed from the registry on first use; run by `make test-slow`
and by .ci/run): our client against @modelcontextprotocol/server-everything, from an agent
run, and the conformance suite against our server and with our client."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "agent"))
from agent_testlib import BUGGY, call, make_repo, run_cli, script, turn  # noqa: E402
from mcp_testlib import PY, free_port, wait_port  # noqa: E402
from npm_peers import peers  # noqa: E402

pytestmark = pytest.mark.slow
CLIENT = str(Path(__file__).parent / "conformance_client.py")

# scenarios that test the protocol itself; the others need the suite's fixture server
# (tools named test_simple_text, resources test://static-text, MRTR, ...), see docs/09-mcp.md
SERVER_SCENARIOS = {
    "2025-11-25": ["server-initialize", "server-session-lifecycle", "ping", "tools-list",
                   "resources-list", "prompts-list", "dns-rebinding-protection",
                   "server-sse-multiple-streams"],
    "2026-07-28": ["tools-list", "resources-list", "prompts-list", "sep-2164-resource-not-found",
                   "caching", "http-header-validation", "dns-rebinding-protection",
                   "input-required-result-unsupported-methods",
                   "input-required-result-validate-input"],
}
CLIENT_SCENARIOS = {
    "2025-11-25": ["initialize", "tools_call", "json-schema-2020-12-preservation"],
    "2026-07-28": ["tools_call", "request-metadata", "http-standard-headers",
                   "http-custom-headers", "http-invalid-tool-headers", "json-schema-ref-no-deref",
                   "json-schema-2020-12-preservation"],
}


def summary(output: str) -> tuple[int, int]:
    clean = re.sub(r"\x1b\[[0-9;]*m", "", output)
    m = re.search(r"Passed: (\d+)/(\d+), (\d+) failed", clean)
    assert m, clean[-2000:]
    return int(m.group(1)), int(m.group(3))


def test_server_everything_from_an_agent_run(tmp_path):
    p = peers()
    repo = make_repo(tmp_path / "repo", BUGGY)
    (repo / ".mcp.json").write_text(json.dumps({"mcpServers": {
        "everything": {"command": "node", "args": [p["everything"], "stdio"]},
        "noisy": {"command": PY, "args": ["-c", "print('Listening on stdio'); import time; "
                                                "time.sleep(30)"]}}}))
    model = script(tmp_path / "s.jsonl", [
        turn(call("mcp__everything__echo", message="hello MCP")),
        turn(call("mcp__everything__get-sum", a=2, b=40)),
        turn(call("mcp__everything__get-structured-content", location="New York")),
        turn(call("mcp__everything__get-tiny-image"), call("mcp__everything__get-resource-links",
                                                           count=2)),
        {"content": "done"}])
    r = run_cli(["-p", "go", "--model", model, "--allow", "mcp__everything",
                 "--output-format", "stream-json"], repo, tmp_path, timeout=180)
    assert r.returncode == 0, r.stderr
    # the server that prints junk on stdout is named, with the junk and what to do
    assert "MCP server 'noisy' wrote something that is not a JSON-RPC message" in r.stderr
    assert "Listening on stdio" in r.stderr and "log to stderr" in r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    tools = events[0]["tools"]
    assert "mcp__everything__echo" in tools and "mcp__everything__trigger-long-running-operation" in tools
    results = {e["name"]: e for e in events if e["type"] == "tool_result"}
    assert results["mcp__everything__echo"]["content"] == "Echo: hello MCP"
    assert "42" in results["mcp__everything__get-sum"]["content"]
    assert "temperature" in results["mcp__everything__get-structured-content"]["content"]
    assert "[image: image/png" in results["mcp__everything__get-tiny-image"]["content"]
    assert "[resource link: " in results["mcp__everything__get-resource-links"]["content"]
    assert not any(r["is_error"] for r in results.values())


@pytest.fixture(scope="module")
def our_http_server(tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws")
    (ws / "a.txt").write_text("hello\n")
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "groundup", "mcp", "serve", "--transport", "http",
                             "--port", str(port), "--root", str(ws)], stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("version,scenario", [(v, s) for v, ss in SERVER_SCENARIOS.items() for s in ss])
def test_conformance_server(our_http_server, version, scenario, tmp_path):
    p = peers()
    r = subprocess.run([p["node"], p["conformance"], "server", "--url", our_http_server,
                        "--scenario", scenario, "--spec-version", version],
                       capture_output=True, text=True, timeout=180, cwd=tmp_path)
    passed, failed = summary(r.stdout + r.stderr)
    assert failed == 0 and passed > 0, r.stdout[-3000:]


@pytest.mark.parametrize("version,scenario", [(v, s) for v, ss in CLIENT_SCENARIOS.items() for s in ss])
def test_conformance_client(version, scenario, tmp_path):
    p = peers()
    r = subprocess.run([p["node"], p["conformance"], "client", "--command", f"{PY} {CLIENT}",
                        "--scenario", scenario, "--spec-version", version],
                       capture_output=True, text=True, timeout=180, cwd=tmp_path)
    passed, failed = summary(r.stdout + r.stderr)
    assert failed == 0 and passed > 0, r.stdout[-3000:]
