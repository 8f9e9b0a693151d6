"""The agent over HTTP: `groundup -p --model openai:NAME --base-url ...` against a scripted
OpenAI-compatible server (an external API replaced by a recording; the provider, the loop
and the tools are real). Checks what a real server would: every request is a valid Chat
Completions conversation, tool results answer the calls that precede them."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent_testlib import BUGGY, PY, make_repo, run_cli


def sse_turn(content: str, calls: list[tuple[str, dict]]) -> bytes:
    """One assistant turn as Chat Completions stream chunks; arguments split in two pieces."""
    chunks = []
    if content:
        chunks.append({"choices": [{"index": 0, "delta": {"role": "assistant", "content": content}}]})
    for i, (name, args) in enumerate(calls):
        text = json.dumps(args)
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": i, "id": f"call_{i}_{name}", "type": "function",
             "function": {"name": name, "arguments": text[:5]}}]}}]})
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": i, "function": {"arguments": text[5:]}}]}}]})
    chunks.append({"choices": [{"index": 0, "delta": {},
                                "finish_reason": "tool_calls" if calls else "stop"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 10}})
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


@pytest.fixture
def server():
    state = {"turns": [], "requests": []}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):
            pass

        def do_GET(self):                      # GET /models, the provider's pre-flight check
            body = json.dumps({"data": [{"id": "scripted-model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            req = json.loads(self.rfile.read(int(self.headers["content-length"])))
            state["requests"].append(req)
            content, calls = state["turns"].pop(0) if state["turns"] else ("", [])
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(sse_turn(content, calls))

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_bug_fix_through_an_openai_compatible_server(tmp_path, server):
    repo = make_repo(tmp_path / "repo", BUGGY)
    server["turns"] = [
        ("Running the tests.", [("bash", {"command": f"{PY} test_calc.py"})]),
        ("", [("read_file", {"path": "calc.py"}), ("grep", {"pattern": "def "})]),
        ("", [("edit_file", {"path": "calc.py", "old_string": "a - b", "new_string": "a + b"})]),
        ("", [("bash", {"command": f"{PY} test_calc.py"})]),
        ("Fixed `add`.", []),
    ]
    p = run_cli(["-p", "fix the tests", "--model", "openai:scripted-model", "--base-url",
                 server["url"], "--permission-mode", "yolo", "--output-format", "json"],
                repo, tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["result"] == "Fixed `add`." and out["num_steps"] == 5
    assert out["usage"] == {"prompt_tokens": 500, "completion_tokens": 50,
                            "cache_read_tokens": 0, "cache_write_tokens": 0}
    assert out["cost_usd"] is None                     # no price known for "scripted-model"
    assert "a + b" in (repo / "calc.py").read_text()
    reqs = server["requests"]
    assert len(reqs) == 5
    assert [t["function"]["name"] for t in reqs[0]["tools"]] == \
        ["read_file", "write_file", "edit_file", "bash", "grep", "glob", "list_dir", "todo_write",
         "diagnostics", "task"]                # subagents (subagents.py)
    last = reqs[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "assistant",
                                         "tool", "tool", "assistant", "tool", "assistant", "tool"]
    for i, m in enumerate(last):            # every result answers a call of the turn before it
        if m["role"] == "tool":
            turn = next(last[j] for j in range(i - 1, -1, -1) if last[j]["role"] == "assistant")
            assert m["tool_call_id"] in [c["id"] for c in turn["tool_calls"]]
    assert last[3]["content"].endswith("[exit code 1]")
    assert last[-1]["content"] == "all tests passed\n[exit code 0]"
    edit = last[7]["tool_calls"][0]
    assert json.loads(edit["function"]["arguments"])["new_string"] == "a + b"
