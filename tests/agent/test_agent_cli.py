"""`groundup -p` as a user runs it: outputs, exit codes, bad input, settings, durability."""

import json
import os
import shlex
import signal
import subprocess
import time

import pytest

from agent_testlib import BUGGY, GROUNDUP, PY, call, cli_env, make_repo, run_cli, script, turn
from groundup.agent.session import Session
from groundup.agent.settings import load_settings


def fix_script(tmp_path):
    return script(tmp_path / "fix.jsonl", [
        turn(call("bash", command=f"{PY} test_calc.py"), content="Running the tests."),
        turn(call("read_file", path="calc.py"), call("grep", pattern="def add")),
        turn(call("edit_file", path="calc.py", old_string="a - b", new_string="a + b")),
        turn(call("bash", command=f"{PY} test_calc.py")),
        {"content": "Fixed add."}])


def test_headless_json(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    p = run_cli(["-p", "fix the tests", "--model", fix_script(tmp_path), "--permission-mode",
                 "yolo", "--output-format", "json"], repo, tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert set(out) >= {"result", "session_id", "num_steps", "usage", "is_error", "cost_usd"}
    assert out["result"] == "Fixed add." and out["is_error"] is False and out["num_steps"] == 5
    assert set(out["usage"]) == {"prompt_tokens", "completion_tokens", "cache_read_tokens",
                                 "cache_write_tokens"}
    assert out["cost_usd"] == 0.0                                # a replay costs nothing
    assert "a + b" in (repo / "calc.py").read_text()
    assert (repo / ".groundup" / "sessions" / f"{out['session_id']}.jsonl").is_file()


def test_headless_stream_json_one_object_per_line(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    p = run_cli(["-p", "fix", "--model", fix_script(tmp_path), "--permission-mode", "yolo",
                 "--output-format", "stream-json"], repo, tmp_path)
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in p.stdout.splitlines()]   # each line is JSON
    types = [e["type"] for e in events]
    assert types[0] == "system" and types[-1] == "result"
    assert {"assistant", "tool_call", "tool_result"} <= set(types)
    assert events[-1]["result"] == "Fixed add." and events[-1]["is_error"] is False
    assert sum(t == "tool_result" for t in types) == 5


def test_headless_text_and_default_mode_refuses_without_hanging(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    p = run_cli(["-p", "fix", "--model", fix_script(tmp_path), "--output-format",
                 "stream-json"], repo, tmp_path, timeout=30)     # default mode, no TTY
    assert p.returncode == 0
    results = [e for e in map(json.loads, p.stdout.splitlines()) if e["type"] == "tool_result"]
    bash_and_edit = [r for r in results if r["name"] in ("bash", "edit_file")]
    assert len(bash_and_edit) == 3
    assert all(r["is_error"] and "needs the user's approval" in r["content"] for r in bash_and_edit)
    assert "a - b" in (repo / "calc.py").read_text()           # nothing was changed
    p = run_cli(["-p", "fix", "--model", fix_script(tmp_path), "--permission-mode", "yolo"],
                repo, tmp_path)
    assert p.stdout == "Fixed add.\n"


def test_limit_gives_nonzero_exit(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    model = script(tmp_path / "loop.jsonl", [turn(call("list_dir", path="."))] * 5)
    p = run_cli(["-p", "x", "--model", model, "--max-steps", "2", "--output-format", "json"],
                repo, tmp_path)
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["is_error"] is True and out["stop_reason"] == "max_steps"


@pytest.mark.parametrize("args,needle", [
    (["--model", "nonsense"], "unknown model 'nonsense'"),
    (["--model", "replay:/nonexistent.jsonl"], "not found"),
    ([], "no model given"),
    (["--model", "replay:x", "--cwd", "/no/such/dir"], "workspace /no/such/dir does not exist"),
    (["--model", "replay:x", "--permission-mode", "sudo"], "invalid choice"),
    (["--model", "replay:x", "--max-steps", "0"], "--max-steps: must be at least 1"),
    (["--model", "anthropic:claude-x"], "ANTHROPIC_API_KEY is not set"),
    (["--model", "openai:m", "--base-url", "http://127.0.0.1:9"], "http://127.0.0.1:9"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, needle):
    p = run_cli(["-p", "task", *args], tmp_path, tmp_path)
    assert p.returncode == 2
    assert needle in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / ".groundup").exists()             # nothing started


def test_interactive_without_a_terminal_is_refused(tmp_path):
    p = run_cli(["--model", "replay:x"], tmp_path, tmp_path, input="")
    assert p.returncode == 2 and "needs a terminal" in p.stderr


def test_settings_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    root = tmp_path / "repo"
    (root / ".groundup").mkdir(parents=True)
    (tmp_path / "cfg" / "groundup").mkdir(parents=True)
    (tmp_path / "cfg" / "groundup" / "settings.json").write_text(json.dumps(
        {"model": "openai:user", "max_steps": 7, "base_url": "http://user",
         "permissions": {"mode": "plan", "deny": ["read(.env)"]}}))
    (root / ".groundup" / "settings.json").write_text(json.dumps(
        {"model": "openai:project", "max_steps": 8, "permissions": {"allow": ["bash(ls)"]}}))
    (root / ".groundup" / "settings.local.json").write_text(json.dumps(
        {"model": "openai:local", "permissions": {"mode": "accept-edits"}}))
    s = load_settings(root)
    assert (s.model, s.max_steps, s.base_url, s.permission_mode) == \
        ("openai:local", 8, "http://user", "accept-edits")
    assert s.allow == ["bash(ls)"] and s.deny == ["read(.env)"]
    s = load_settings(root, {"model": "replay:cli", "max_steps": None,
                             "permissions": {"mode": "yolo", "deny": ["bash"]}})
    assert (s.model, s.max_steps, s.permission_mode) == ("replay:cli", 8, "yolo")
    assert s.deny == ["read(.env)", "bash"]
    (root / ".groundup" / "settings.json").write_text("{not json")
    with pytest.raises(Exception, match="not valid JSON"):
        load_settings(root)


def test_killed_session_resumes_with_full_history(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    marker = tmp_path / "started"
    first = script(tmp_path / "first.jsonl", [
        turn(call("read_file", path="calc.py"), content="Reading."),
        turn(call("bash", command=f"echo $$ > {shlex.quote(str(marker))}; sleep 20"), content="Running something long."),
        {"content": "never reached"}])
    proc = subprocess.Popen([*GROUNDUP, "-p", "fix it", "--model", first, "--permission-mode",
                             "yolo", "--output-format", "stream-json"], cwd=repo,
                            env=cli_env(tmp_path), stdout=subprocess.PIPE, text=True)
    session_id = json.loads(proc.stdout.readline())["session_id"]
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    proc.send_signal(signal.SIGKILL)                      # no cleanup, no last words
    proc.wait()
    proc.stdout.close()
    try:                                                  # the orphaned `sleep 20` of this test
        os.killpg(int(marker.read_text()), signal.SIGKILL)
    except ProcessLookupError:
        pass
    path = repo / ".groundup" / "sessions" / f"{session_id}.jsonl"
    before = [json.loads(line) for line in path.read_text().splitlines()]
    assert [m["role"] for m in before] == ["system", "user", "assistant", "tool", "assistant"]

    # a new process has not read anything: files may have changed while it was dead
    second = script(tmp_path / "second.jsonl", [
        turn(call("read_file", path="calc.py")),
        turn(call("edit_file", path="calc.py", old_string="a - b", new_string="a + b")),
        {"content": "Resumed and fixed."}])
    p = run_cli(["--resume", session_id[:15], "-p", "go on", "--model", second,
                 "--permission-mode", "yolo", "--output-format", "json"], repo, tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["session_id"] == session_id
    after = Session(path).load()
    assert after[:5] == before                            # the full history, untouched
    assert "interrupted" in after[5]["content"] and after[5]["role"] == "tool"
    assert after[6] == {"role": "user", "content": "go on"}
    assert after[-1]["content"] == "Resumed and fixed."
    assert "a + b" in (repo / "calc.py").read_text()


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": "x\n"})
    sessions = repo / ".groundup" / "sessions"
    sessions.mkdir(parents=True)
    good = [{"role": "system", "content": "s"}, {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi there"}]
    (sessions / "20260101-000000-abcd.jsonl").write_text(
        "".join(json.dumps(m) + "\n" for m in good) + '{"role": "user", "cont')
    model = script(tmp_path / "s.jsonl", [{"content": "continued"}])
    p = run_cli(["--continue", "-p", "more", "--model", model, "--output-format", "json"],
                repo, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "skipping a truncated or corrupt line" in p.stderr and "Traceback" not in p.stderr
    msgs = Session(sessions / "20260101-000000-abcd.jsonl").load(warn=None)
    assert msgs[:3] == good and msgs[-1]["content"] == "continued"
    p = run_cli(["--resume", "nope", "-p", "x", "--model", model], repo, tmp_path)
    assert p.returncode == 2 and "no session 'nope'" in p.stderr
