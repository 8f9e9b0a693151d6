"""The interactive mode's daily-use features, driven in a pseudo-terminal (pexpect): custom
commands, hooks and their approval, /rewind, /compact."""

import json
import signal
import time
from pathlib import Path

import pexpect
import pytest

from agent_testlib import BUGGY, GROUNDUP, call, cli_env, make_repo, script, turn
from groundup.agent.session import Session


def spawn(repo, tmp_path, model, *extra):
    return pexpect.spawn(GROUNDUP[0], GROUNDUP[1:] + ["--model", model, *extra], cwd=str(repo),
                         env=dict(cli_env(tmp_path), TERM="xterm-256color",
                                  PROMPT_TOOLKIT_NO_CPR="1"),
                         encoding="utf-8", timeout=30, dimensions=(50, 160))


@pytest.mark.timeout(90)
def test_custom_command_and_approved_project_hooks(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    (repo / ".groundup/commands").mkdir(parents=True)
    (repo / ".groundup/commands/fix.md").write_text(
        "---\ndescription: fix a failing test file\n---\nMake $ARGUMENTS pass.\n")
    (repo / ".groundup/settings.json").write_text(json.dumps({"hooks": {
        "PostToolUse": [{"matcher": "bash", "command": "echo checked >&2; exit 1"}]}}))
    model = script(tmp_path / "m.jsonl", [turn(call("bash", command="echo hi")),
                                          {"content": "Done with the command."}])
    child = spawn(repo, tmp_path, model, "--permission-mode", "yolo")
    try:
        child.expect("defines hooks")
        child.expect(r"PostToolUse \[bash\]: echo checked")
        child.expect(r"Run them in this project\?")
        child.sendline("y")
        child.expect_exact(">")
        child.sendline("/help")
        child.expect("custom commands")
        child.expect(r"/fix\s+fix a failing test file")
        child.expect_exact(">")
        child.sendline("/hooks")
        child.expect(r"PostToolUse \[bash\]: echo checked")
        child.expect_exact(">")
        child.sendline("/fix test_calc.py")
        child.expect("bash  echo hi")
        child.expect(r"PostToolUse hook on bash `echo checked >&2; exit 1` failed \(exit 1\): checked")
        child.expect("Done with the command.")
        child.expect_exact(">")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    msgs = Session.latest(repo / ".groundup/sessions").load()
    assert [m["content"] for m in msgs if m["role"] == "user"] == ["Make test_calc.py pass."]
    # approved once: the next session does not ask again
    child = spawn(repo, tmp_path, script(tmp_path / "n.jsonl", [{"content": "ok"}]))
    try:
        i = child.expect([r"Run them in this project\?", ">"])
        assert i == 1
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


@pytest.mark.timeout(90)
def test_rewind_in_the_terminal(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    model = script(tmp_path / "m.jsonl", [
        turn(call("read_file", path="calc.py")),
        turn(call("edit_file", path="calc.py", old_string="a - b", new_string="a + b")),
        {"content": "Fixed add."},
        turn(call("edit_file", path="calc.py", old_string="a * b", new_string="a ** b")),
        {"content": "Broke mul, sorry."},
        {"content": "Back before the second turn."}])
    child = spawn(repo, tmp_path, model, "--permission-mode", "yolo")
    try:
        child.expect_exact(">")
        child.sendline("fix add")
        child.expect("Fixed add.")
        child.expect_exact(">")
        child.sendline("now change mul")
        child.expect("Broke mul, sorry.")
        child.expect_exact(">")
        assert "a ** b" in (repo / "calc.py").read_text()
        child.sendline("/rewind")
        child.expect(r"2  now change mul  files: calc\.py")
        child.expect_exact(">")
        child.sendline("/rewind 2")
        child.expect("rewind to before turn 2")
        child.expect(r"-    return a \*\* b")
        child.expect(r"\+    return a \* b")
        child.expect(r"Rewind files and conversation\?")
        child.sendline("y")
        child.expect(r"restored 1 file\(s\)")
        child.expect_exact(">")
        child.sendline("where are we?")
        child.expect("Back before the second turn.")
        child.expect_exact(">")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    text = (repo / "calc.py").read_text()
    assert "a + b" in text and "a * b" in text
    msgs = Session.latest(repo / ".groundup/sessions").load()
    assert [m["content"] for m in msgs if m["role"] == "user"] == ["fix add", "where are we?"]


@pytest.mark.timeout(90)
def test_compact_in_the_terminal(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    model = script(tmp_path / "m.jsonl", [
        turn(call("read_file", path="calc.py"), call("read_file", path="test_calc.py")),
        {"content": "add subtracts; mul is fine."},
        {"content": "Summary: calc.add returns a - b (wrong)."},        # asked for by /compact
        {"content": "Yes, from the summary: add is wrong."}])
    child = spawn(repo, tmp_path, model, "--permission-mode", "yolo")
    try:
        child.expect_exact(">")
        child.sendline("look at calc")
        child.expect("add subtracts")
        child.expect_exact(">")
        child.sendline("/compact keep the function names")
        child.expect(r"compacted, /compact: 6 messages replaced by the model's summary")
        child.expect("calc.add returns a - b")
        child.expect_exact(">")
        child.sendline("still know what is wrong?")
        child.expect("from the summary: add is wrong")
        child.expect_exact(">")
        child.sendline("/status")
        child.expect(r"replay:\S+ · yolo · context 0\.\dk")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    msgs = Session.latest(repo / ".groundup/sessions").load()
    summary = [m for m in msgs if m.get("summary")]
    assert len(summary) == 1 and summary[0]["content"].endswith("Summary: calc.add returns a - b (wrong).")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "tool", "assistant",
                                         "user", "user", "assistant"]


@pytest.mark.timeout(90)
def test_the_status_line_shows_context_use(tmp_path):
    """Under the prompt (prompt_toolkit's bottom toolbar, which needs the terminal to answer
    cursor-position requests: answered here as a real terminal would)."""
    repo = make_repo(tmp_path / "repo", BUGGY)
    (repo / ".groundup").mkdir()
    (repo / ".groundup/settings.local.json").write_text(json.dumps({"context_window": 2000}))
    model = script(tmp_path / "m.jsonl", [turn(call("read_file", path="calc.py")), {"content": "ok"}])
    child = pexpect.spawn(GROUNDUP[0], GROUNDUP[1:] + ["--model", model, "--permission-mode", "yolo"],
                          cwd=str(repo), env=dict(cli_env(tmp_path), TERM="xterm-256color"),
                          encoding="utf-8", timeout=30, dimensions=(50, 160))

    def until(pattern):
        while child.expect([r"\x1b\[6n", pattern]) == 0:
            child.send("\x1b[1;1R")                              # the cursor is at row 1, column 1

    try:
        until(r"context 0\.0k of 2k \(0%\)")
        child.sendline("read calc")
        until(r"context 0\.[1-9]k of 2k \([1-9]\d?%\)")       # the last turn's prompt + answer
        child.sendline("/exit")
        until(pexpect.EOF)
    finally:
        child.close(force=True)


@pytest.mark.timeout(90)
def test_ctrl_c_stops_a_subagent_and_the_parents_turn(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    model = script(tmp_path / "m.jsonl", [
        turn(call("task", description="wait", subagent_type="general-purpose", prompt="wait")),
        turn(call("bash", command="echo $$ > child.pid; sleep 60")),          # the child
        {"content": "The parent goes on after the interrupt."}])
    child = pexpect.spawn(GROUNDUP[0], GROUNDUP[1:] + ["--model", model, "--permission-mode", "yolo"],
                          cwd=str(repo), env=dict(cli_env(tmp_path), TERM="xterm-256color",
                                                  PROMPT_TOOLKIT_NO_CPR="1"),
                          encoding="utf-8", timeout=30, dimensions=(50, 160),
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        child.expect_exact(">")
        child.sendline("delegate")
        pidfile = repo / "child.pid"
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(pidfile.read_text())
        child.sendintr()
        child.expect("interrupted; the session goes on")
        child.expect_exact(">")
        time.sleep(0.2)
        assert not Path(f"/proc/{pid}").exists() or "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
        child.sendline("still there?")
        child.expect("The parent goes on after the interrupt.")
        child.expect_exact(">")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    msgs = Session.latest(repo / ".groundup/sessions").load()
    task_result = next(m for m in msgs if m["role"] == "tool")
    assert "interrupted" in task_result["content"]
