"""Hooks (groundup/agent/hooks.py): real commands, run by the real CLI, around a scripted model."""

import json
import shlex
import time
from pathlib import Path

from agent_testlib import BUGGY, PY, call, make_repo, run_cli, script, turn
from groundup.agent.session import Session


def settings(repo, hooks, name="settings.local.json", **extra):
    path = repo / ".groundup" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"hooks": hooks, "permissions": {"mode": "yolo"}, **extra}))


def hook_script(repo, name, body):
    """A hook written in Python: reads the event from stdin as `ev`."""
    path = repo / name
    path.write_text("import json, sys\nev = json.load(sys.stdin)\n" + body)
    return f"{shlex.quote(PY)} {shlex.quote(str(path))}"   # a shell command: quote (TMPDIR may hold spaces)


def run_json(repo, tmp_path, model, task="go", extra=()):
    p = run_cli(["-p", task, "--model", model, "--output-format", "stream-json", *extra],
                repo, tmp_path, timeout=60)
    events = [json.loads(line) for line in p.stdout.splitlines()]
    return p, events


def session_messages(repo):
    return Session.list(repo / ".groundup" / "sessions")[-1].load()


def test_pre_tool_use_hook_blocks_rm(tmp_path):
    repo = make_repo(tmp_path / "repo", {**BUGGY, "important.txt": "keep me\n"})
    guard = hook_script(repo, "guard.py",
                        "cmd = ev['tool_input'].get('command', '')\n"
                        "if ev['tool_name'] == 'bash' and cmd.split()[:1] == ['rm']:\n"
                        "    print('rm is not allowed here; move files to trash/ instead', file=sys.stderr)\n"
                        "    sys.exit(2)\n")
    settings(repo, {"PreToolUse": [{"matcher": "bash|edit_file", "command": guard}]})
    model = script(tmp_path / "m.jsonl", [turn(call("bash", command="rm important.txt")),
                                          turn(call("bash", command="echo still allowed")),
                                          {"content": "I could not delete it."}])
    p, events = run_json(repo, tmp_path, model)
    assert p.returncode == 0, p.stderr
    assert (repo / "important.txt").read_text() == "keep me\n"           # the call never ran
    results = [e for e in events if e["type"] == "tool_result"]
    assert results[0]["is_error"]
    assert results[0]["content"] == ("blocked by a PreToolUse hook: rm is not allowed here; "
                                     "move files to trash/ instead")
    assert "still allowed" in results[1]["content"]                    # other calls run
    hooks = [e for e in events if e["type"] == "hook"]
    assert [h["outcome"] for h in hooks] == ["blocked", "ok"]
    # the model saw the reason: it is in the conversation, on disk
    tool_msgs = [m for m in session_messages(repo) if m["role"] == "tool"]
    assert "rm is not allowed here" in tool_msgs[0]["content"]


def test_post_tool_use_hook_runs_a_formatter(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    # a formatter: strip trailing whitespace, and tabs to four spaces, in the file just edited
    fmt = hook_script(repo, "fmt.py",
                      "p = ev['tool_input']['path']\n"
                      "assert ev['tool_response']['is_error'] is False\n"
                      "lines = open(p).read().split('\\n')\n"
                      "open(p, 'w').write('\\n'.join(l.replace('\\t', '    ').rstrip() for l in lines))\n")
    settings(repo, {"PostToolUse": [{"matcher": "edit_file|write_file", "command": fmt}]})
    model = script(tmp_path / "m.jsonl", [
        turn(call("read_file", path="calc.py")),
        turn(call("edit_file", path="calc.py", old_string="    return a - b",
                  new_string="\treturn a + b   ")),
        {"content": "done"}])
    p, events = run_json(repo, tmp_path, model)
    assert p.returncode == 0, p.stderr
    assert (repo / "calc.py").read_text().startswith("def add(a, b):\n    return a + b\n")
    hooks = [e for e in events if e["type"] == "hook"]
    assert [(h["event"], h["tool"], h["outcome"]) for h in hooks] == \
        [("PostToolUse", "edit_file", "ok")]                   # not for read_file


def test_a_hook_past_its_timeout_is_killed_and_the_run_goes_on(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    settings(repo, {"PreToolUse": [{"command": "echo $$ > hook.pid; sleep 60", "timeout": 1}]})
    model = script(tmp_path / "m.jsonl", [turn(call("bash", command="echo ran")),
                                          {"content": "finished"}])
    start = time.monotonic()
    p, events = run_json(repo, tmp_path, model)
    assert time.monotonic() - start < 30
    assert p.returncode == 0, p.stderr
    hook = next(e for e in events if e["type"] == "hook")
    assert hook["outcome"] == "timeout" and hook["exit_code"] is None
    assert "killed after its timeout of 1s" in hook["stderr"]
    result = next(e for e in events if e["type"] == "tool_result")
    assert "ran" in result["content"] and not result["is_error"]       # a warning, not a block
    assert events[-1]["result"] == "finished"
    pid = int((repo / "hook.pid").read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists()                           # the sleep is gone


def test_stop_hook_sends_the_agent_back_once(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    stop = hook_script(repo, "stop.py",
                       "import pathlib\n"
                       "if not ev['stop_hook_active']:\n"
                       "    print('the tests still fail: run test_calc.py', file=sys.stderr)\n"
                       "    sys.exit(2)\n")
    settings(repo, {"Stop": [{"command": stop}]})
    model = script(tmp_path / "m.jsonl", [
        {"content": "All done (I think)."},
        turn(call("bash", command=f"{PY} test_calc.py")),
        {"content": "Now really done."}])
    p, events = run_json(repo, tmp_path, model)
    assert p.returncode == 0, p.stderr
    assert events[-1]["result"] == "Now really done." and events[-1]["num_steps"] == 3
    users = [m["content"] for m in session_messages(repo) if m["role"] == "user"]
    assert users == ["go", "[Stop hook] the tests still fail: run test_calc.py"]


def test_prompt_and_session_start_hooks_add_context_or_block(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    gate = hook_script(repo, "gate.py",
                       "if 'password' in ev['prompt']:\n"
                       "    print('prompts must not contain secrets', file=sys.stderr)\n"
                       "    sys.exit(2)\n"
                       "print('house rule: run tests with python test_calc.py')\n")
    start = hook_script(repo, "start.py", "print('session from', ev['source'])\n")
    settings(repo, {"UserPromptSubmit": [{"command": gate}], "SessionStart": [{"command": start}]})
    model = script(tmp_path / "m.jsonl", [{"content": "ok"}])
    p, events = run_json(repo, tmp_path, model, task="fix it")
    assert p.returncode == 0, p.stderr
    first_user = next(m for m in session_messages(repo) if m["role"] == "user")
    assert first_user["content"] == ("fix it\n\nsession from startup\n\n"
                                     "house rule: run tests with python test_calc.py")
    p, events = run_json(repo, tmp_path, model, task="my password is hunter2")
    assert p.returncode == 1
    assert events[-1]["stop_reason"] == "blocked"
    assert "prompts must not contain secrets" in events[-1]["result"]
    assert not any("hunter2" in m.get("content", "") for m in session_messages(repo))


def test_project_hooks_run_only_once_approved(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    settings(repo, {"PreToolUse": [{"command": "touch hook-ran"}]}, name="settings.json")
    model = script(tmp_path / "m.jsonl", [turn(call("bash", command="true")), {"content": "ok"}])
    p, events = run_json(repo, tmp_path, model)
    assert p.returncode == 0
    assert "not approved" in p.stderr and "groundup hooks --approve" in p.stderr
    assert not (repo / "hook-ran").exists()
    listing = run_cli(["hooks"], repo, tmp_path)
    assert "PreToolUse: touch hook-ran" in listing.stdout and "NOT APPROVED" in listing.stdout
    assert run_cli(["hooks", "--approve"], repo, tmp_path).returncode == 0
    p, events = run_json(repo, tmp_path, model)
    assert "not approved" not in p.stderr
    assert (repo / "hook-ran").exists()
    # a changed hook needs a new approval
    settings(repo, {"PreToolUse": [{"command": "touch other"}]}, name="settings.json")
    p, events = run_json(repo, tmp_path, model)
    assert "not approved" in p.stderr and not (repo / "other").exists()


def test_bad_hook_settings_are_one_clear_line(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    model = script(tmp_path / "m.jsonl", [{"content": "ok"}])
    for hooks, words in [({"BeforeTool": []}, "unknown hook event 'BeforeTool'"),
                         ({"PreToolUse": [{"matcher": "("}]}, "not a valid regular expression"),
                         ({"Stop": [{"command": "x", "timeout": -1}]}, "'timeout' must be a positive"),
                         ({"Stop": [{"matcher": "x"}]}, "needs a \"command\" string")]:
        settings(repo, hooks)
        p = run_cli(["-p", "x", "--model", model], repo, tmp_path)
        assert p.returncode == 2, p.stderr
        assert words in p.stderr and "Traceback" not in p.stderr
