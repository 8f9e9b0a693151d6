"""The sandboxed shell (groundup/agent/sandbox.py): real commands that try to leave the
workspace, under a real bubblewrap. Skipped with the reason where bwrap cannot run."""

import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent_testlib import BUGGY, GROUNDUP, call, cli_env, make_repo, run_cli, script, turn


def bwrap_works() -> str | None:
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap (.ci/run does)"
    p = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "true"],
                       capture_output=True, text=True)
    return None if p.returncode == 0 else f"bwrap cannot make a sandbox here: {p.stderr.strip()}"


needs_bwrap = pytest.mark.skipif(bwrap_works() is not None, reason=str(bwrap_works()))


def sleep_seconds(whole: int) -> str:
    """A sleep length no other process on this machine has in its command line: two test suites
    running this file at once on a shared machine would otherwise see each other's sleeps."""
    return f"{whole}.{os.getpid()}{time.monotonic_ns() % 1000:03d}"


def host_processes(needle: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if needle.encode() not in (d / "cmdline").read_bytes():
                    continue
                if "\nState:\tZ" not in (d / "status").read_text():
                    found.append(int(d.name))
            except OSError:
                continue                                 # it ended while we looked
    return found


@pytest.fixture
def listener():
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"reached the host")

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], hits
    httpd.shutdown()
    httpd.server_close()


def bash_results(p):
    assert p.returncode == 0, p.stderr
    return [e["content"] for e in map(json.loads, p.stdout.splitlines()) if e["type"] == "tool_result"]


@needs_bwrap
def test_commands_cannot_leave_the_workspace(tmp_path, listener):
    port, hits = listener
    sleeper = sleep_seconds(999)
    repo = make_repo(tmp_path / "repo", {**BUGGY, ".env": "API_KEY=topsecret-4471\n"})
    commands = ["touch ../outside; echo touched=$?",
                "echo hi > \"$HOME/written\"; echo home=$?",
                "touch /usr/evil; echo usr=$?",
                f"curl -s -m 5 http://127.0.0.1:{port}/ ; echo curl=$?",
                f"setsid sleep {sleeper} & sleep 0.5; echo started",
                "cat .env; echo cat=$?",
                "echo inside > made-here.txt && cat made-here.txt"]
    model = script(tmp_path / "m.jsonl", [turn(call("bash", command=c)) for c in commands] +
                   [turn(call("read_file", path=".env")), {"content": "done"}])
    p = run_cli(["-p", "escape", "--model", model, "--sandbox", "--permission-mode", "yolo",
                 "--output-format", "stream-json"], repo, tmp_path)
    out = bash_results(p)
    assert not (tmp_path / "outside").exists()                 # a private /tmp, thrown away
    assert not (tmp_path / "written").exists()                 # $HOME (here under /tmp) too
    assert "Read-only file system" in out[2] and not Path("/usr/evil").exists()
    assert hits == [] and "curl=7" in out[3]                   # no route to the host's loopback
    time.sleep(0.3)
    assert host_processes(sleeper) == []                       # setsid did not escape
    assert "topsecret" not in out[5]
    assert "cat: .env: Permission denied" in out[5]            # refused, like the read tool
    assert out[6].startswith("inside")
    assert (repo / "made-here.txt").read_text() == "inside\n"  # the workspace is writable
    assert "may hold secrets" in out[7] and "read(.env)" in out[7]
    assert (repo / ".env").read_text() == "API_KEY=topsecret-4471\n"


@needs_bwrap
def test_an_allow_rule_opens_a_secret_and_the_network_setting(tmp_path, listener):
    port, hits = listener
    repo = make_repo(tmp_path / "repo", {**BUGGY, ".env": "API_KEY=topsecret-4471\n"})
    (repo / ".groundup").mkdir()
    (repo / ".groundup/settings.local.json").write_text(json.dumps({
        "sandbox": {"enabled": True, "network": True},
        "permissions": {"mode": "yolo", "allow": ["read(.env)"]}}))
    model = script(tmp_path / "m.jsonl", [
        turn(call("bash", command="cat .env")),
        turn(call("bash", command=f"curl -s -m 5 http://127.0.0.1:{port}/ping")),
        turn(call("read_file", path=".env")), {"content": "done"}])
    out = bash_results(run_cli(["-p", "x", "--model", model, "--output-format", "stream-json"],
                               repo, tmp_path))
    assert "topsecret-4471" in out[0] and "reached the host" in out[1] and hits == ["/ping"]
    assert "topsecret-4471" in out[2]


def test_without_the_sandbox_setsid_escapes_the_group_kill(tmp_path):
    """The gap the sandbox closes, shown on the plain shell (shell.py)."""
    sleeper = sleep_seconds(998)
    repo = make_repo(tmp_path / "repo", BUGGY)
    model = script(tmp_path / "m.jsonl", [
        turn(call("bash", command=f"setsid sleep {sleeper} & sleep 0.5; echo ok")), {"content": "done"}])
    try:
        p = run_cli(["-p", "x", "--model", model, "--permission-mode", "yolo"], repo, tmp_path)
        assert p.returncode == 0
        time.sleep(0.3)
        assert host_processes(sleeper) != []
    finally:
        for pid in host_processes(sleeper):
            os.kill(pid, signal.SIGKILL)


@needs_bwrap
def test_a_killed_agent_takes_its_sandboxed_command_with_it(tmp_path):
    sleeper = sleep_seconds(997)
    repo = make_repo(tmp_path / "repo", BUGGY)
    model = script(tmp_path / "m.jsonl", [turn(call("bash", command=f"sleep {sleeper}"))])
    agent = subprocess.Popen([*GROUNDUP, "-p", "x", "--model", model, "--sandbox",
                              "--permission-mode", "yolo"], cwd=repo, env=cli_env(tmp_path),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60                 # a loaded machine starts slowly
        while not host_processes(sleeper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host_processes(sleeper)
        agent.kill()                                     # SIGKILL: no cleanup code runs
        agent.wait()
        deadline = time.monotonic() + 30
        while host_processes(sleeper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host_processes(sleeper) == []
    finally:
        agent.kill()
        for pid in host_processes(sleeper):
            os.kill(pid, signal.SIGKILL)


def test_sandbox_without_bwrap_refuses_to_start(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    model = script(tmp_path / "m.jsonl", [turn(call("bash", command="touch ran"))])
    env = dict(cli_env(tmp_path), PATH=str(tmp_path / "empty-bin"))
    p = subprocess.run([*GROUNDUP, "-p", "x", "--model", model, "--sandbox", "--permission-mode",
                        "yolo"], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "the sandbox needs bubblewrap, which is not installed: `apt-get install bubblewrap`" in p.stderr
    assert not (repo / "ran").exists() and "Traceback" not in p.stderr


def test_secret_rules_refuse_reads_in_every_mode_unless_allowed(tmp_path):
    from groundup.agent.permissions import Permissions
    from groundup.agent.tools import Toolbox
    from groundup.chat.types import ToolCall
    repo = make_repo(tmp_path / "repo", {**BUGGY, ".env.local": "TOKEN=abc123\n",
                                         "certs/server.pem": "-----BEGIN PRIVATE KEY-----\n",
                                         "id_utils.py": "TOKEN = 'not a secret'\n"})

    def run(perms, name, **args):
        return Toolbox(repo, permissions=perms).execute(ToolCall(name=name, arguments=args))

    yolo = Permissions(mode="yolo")
    r = run(yolo, "read_file", path=".env.local")
    assert r.is_error and "may hold secrets (the default rule read(.env.*))" in r.content
    assert run(yolo, "read_file", path="certs/server.pem").is_error
    assert not run(yolo, "read_file", path="id_utils.py").is_error       # a name, not a key
    found = run(yolo, "grep", pattern="TOKEN").content
    assert "id_utils.py" in found and "abc123" not in found               # searches skip secrets
    opened = Permissions(mode="yolo", allow=["read(.env.local)"])
    assert "abc123" in run(opened, "read_file", path=".env.local").content
    assert "abc123" in run(opened, "grep", pattern="TOKEN").content
