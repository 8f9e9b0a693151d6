"""The interactive mode tried as a new user would, in a pseudo-terminal (pexpect)."""

import signal
import time

import pexpect
import pytest

from agent_testlib import BUGGY, GROUNDUP, PY, call, cli_env, make_repo, script, turn
from groundup.agent.session import Session


def alive(pid: int) -> bool:
    try:
        status = open(f"/proc/{pid}/status").read()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.timeout(120)
def test_interactive_session_in_a_terminal(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    model = script(tmp_path / "tui.jsonl", [
        # first message: read, an edit the user approves, a command the user refuses
        turn(call("read_file", path="calc.py"), content="Let me look at **calc.py**."),
        turn(call("edit_file", path="calc.py", old_string="a - b", new_string="a + b")),
        turn(call("bash", command=f"{PY} test_calc.py")),
        {"content": "Fixed `add`; you declined running the tests."},
        # second message: a long command, cancelled with Ctrl-C
        turn(call("bash", command="echo $$ > sleeper.pid; sleep 60")),
        # third message: the session goes on after the interrupt
        {"content": "Still here after the interrupt."},
    ])
    # SIG_DFL in the child: under `cmd &` a shell starts the tests with Ctrl-C ignored, the
    # child would inherit that, and Python then never raises KeyboardInterrupt
    child = pexpect.spawn(GROUNDUP[0], GROUNDUP[1:] + ["--model", model], cwd=str(repo),
                          env=dict(cli_env(tmp_path), TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1"),
                          encoding="utf-8", timeout=30, dimensions=(50, 140),
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        child.expect("session ")
        child.expect_exact(">")
        child.sendline("the tests fail, fix them")
        child.expect("read_file  calc.py")
        child.expect(r"Allow edit calc\.py\?")
        child.sendline("y")
        child.expect(r"\+    return a \+ b")                 # the diff is shown
        child.expect(r"Allow run: .*test_calc\.py\?")
        child.sendline("n")
        child.expect("declined")                             # the refusal, as the model sees it
        child.expect("you declined running the tests")
        child.expect_exact(">")
        assert "a + b" in (repo / "calc.py").read_text()

        child.sendline("run the slow thing")
        child.expect(r"Allow run: echo")
        child.sendline("y")
        deadline = time.monotonic() + 20
        pidfile = repo / "sleeper.pid"
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(pidfile.read_text())
        assert alive(pid)
        child.sendintr()                                     # Ctrl-C
        child.expect("interrupted")
        child.expect_exact(">")
        time.sleep(0.2)
        assert not alive(pid)                                # the command was killed

        child.sendline("are you there?")
        child.expect("Still here after the interrupt.")
        child.expect_exact(">")
        child.sendline("/status")
        child.expect(r"tokens: \d+ prompt")
        child.expect_exact(">")
        child.sendline("/exit")
        child.expect("session saved")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    sessions = Session.list(repo / ".groundup" / "sessions")
    assert len(sessions) == 1
    msgs = sessions[0].load()
    assert [m["content"] for m in msgs if m["role"] == "user"] == \
        ["the tests fail, fix them", "run the slow thing", "are you there?"]
    assert any("interrupted" in m["content"] for m in msgs if m["role"] == "tool")
    assert (repo / ".groundup" / "history").is_file()


@pytest.mark.timeout(60)
def test_sigterm_ends_the_session_and_kills_the_command(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    model = script(tmp_path / "t.jsonl", [turn(call("bash", command="echo $$ > p.pid; sleep 60"))])
    child = pexpect.spawn(GROUNDUP[0], GROUNDUP[1:] + ["--model", model, "--permission-mode", "yolo"],
                          cwd=str(repo), env=dict(cli_env(tmp_path), TERM="xterm-256color",
                                                  PROMPT_TOOLKIT_NO_CPR="1"),
                          encoding="utf-8", timeout=30, dimensions=(50, 140))
    try:
        child.expect_exact(">")
        child.sendline("wait")
        pidfile = repo / "p.pid"
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(pidfile.read_text())
        child.kill(15)                                       # SIGTERM
        child.expect("session saved")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    time.sleep(0.2)
    assert not alive(pid)


@pytest.mark.timeout(60)
def test_paste_history_and_slash_commands(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    model = script(tmp_path / "p.jsonl", [{"content": "Got your two lines."},
                                          {"content": "A fresh start."}])
    other = script(tmp_path / "other.jsonl", [{"content": "the other model"}])
    child = pexpect.spawn(GROUNDUP[0], GROUNDUP[1:] + ["--model", model], cwd=str(repo),
                          env=dict(cli_env(tmp_path), TERM="xterm-256color",
                                   PROMPT_TOOLKIT_NO_CPR="1"),
                          encoding="utf-8", timeout=30, dimensions=(50, 140))
    try:
        child.expect_exact(">")
        # a bracketed paste of two lines stays one message; Enter then sends it
        child.send("\x1b[200~first line\nsecond line\x1b[201~")
        child.send("\r")
        child.expect("Got your two lines.")
        child.expect_exact(">")
        child.sendline("/help")
        child.expect("/resume")
        child.expect_exact(">")
        child.sendline("/mode plan")
        child.expect("permission mode: plan")
        child.sendline("/model " + other)
        child.expect_exact(f"model: {other}")
        child.sendline("/clear")
        child.expect("new session")
        child.sendline("/model " + model)
        child.sendline("/resume")
        child.expect("first line second line")                # the listing shows the old one
        child.sendline("/nonsense")
        child.expect("unknown command")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    sessions = Session.list(repo / ".groundup" / "sessions")
    first = [m for m in sessions[0].load() if m["role"] == "user"]
    assert first == [{"role": "user", "content": "first line\nsecond line"}]
    assert "first line" in (repo / ".groundup" / "history").read_text()
