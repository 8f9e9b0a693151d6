"""The real tools on real files: formats, edits, line endings, bash kills, grep parity."""

import os
import stat
import time
from pathlib import Path

import pytest

from agent_testlib import PY, make_repo
from groundup.agent import search, shell
from groundup.agent.tools import Toolbox
from groundup.chat.types import ToolCall


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a (possibly absent) reaper."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def ex(tb: Toolbox, name: str, **args):
    return tb.execute(ToolCall(name, args))


def test_read_file_numbers_pages_and_refuses_binary(tmp_path):
    (tmp_path / "a.py").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    (tmp_path / "blob.bin").write_bytes(b"\x89PNG\x00\x01\x02")
    (tmp_path / "empty.txt").write_text("")
    tb = Toolbox(tmp_path)
    r = ex(tb, "read_file", path="a.py")
    assert not r.is_error
    assert r.content.splitlines()[0] == "     1\tline 1"
    assert r.content.splitlines()[-1] == "    10\tline 10"
    r = ex(tb, "read_file", path="a.py", offset=4, limit=3)
    assert r.content.splitlines() == ["     4\tline 4", "     5\tline 5", "     6\tline 6",
                                      "[showing lines 4-6 of 10; read more with offset=7]"]
    r = ex(tb, "read_file", path="blob.bin")
    assert r.is_error and "binary" in r.content
    assert ex(tb, "read_file", path="empty.txt").content == "(empty file)"
    r = ex(tb, "read_file", path="missing.py")
    assert r.is_error and "does not exist" in r.content
    assert ex(tb, "read_file", path="a.py", offset=50).is_error


def test_malformed_and_unknown_calls_are_tool_errors(tmp_path):
    tb = Toolbox(tmp_path)
    r = tb.execute(ToolCall("read_file", {}, error="invalid JSON in arguments"))
    assert r.is_error and "invalid JSON" in r.content
    r = ex(tb, "rm_rf", path=".")
    assert r.is_error and "unknown tool" in r.content and "read_file" in r.content
    r = ex(tb, "read_file", file="a.py")
    assert r.is_error and "path" in r.content
    r = ex(tb, "read_file", path="a.py", offset="x")
    assert r.is_error and "integer" in r.content
    r = ex(tb, "read_file", path="a.py", offset=1.5)
    assert r.is_error and "integer" in r.content


def test_edit_must_match_once_unless_replace_all(tmp_path):
    p = tmp_path / "x.py"
    p.write_text("a = 1\nb = 2\na = 1\n")
    tb = Toolbox(tmp_path)
    ex(tb, "read_file", path="x.py")
    r = ex(tb, "edit_file", path="x.py", old_string="a = 1", new_string="a = 9")
    assert r.is_error and "2 times" in r.content
    assert p.read_text() == "a = 1\nb = 2\na = 1\n"
    r = ex(tb, "edit_file", path="x.py", old_string="a = 1\nb", new_string="a = 9\nb")
    assert not r.is_error
    assert "-a = 1\n+a = 9" in r.content           # a unified diff
    assert p.read_text() == "a = 9\nb = 2\na = 1\n"
    r = ex(tb, "edit_file", path="x.py", old_string="nope", new_string="x")
    assert r.is_error and "not found" in r.content
    r = ex(tb, "edit_file", path="x.py", old_string="= ", new_string="=", replace_all=True)
    assert not r.is_error and p.read_text() == "a =9\nb =2\na =1\n"


def test_edit_requires_a_fresh_read(tmp_path):
    p = tmp_path / "x.py"
    p.write_text("x = 1\n")
    tb = Toolbox(tmp_path)
    r = ex(tb, "edit_file", path="x.py", old_string="x = 1", new_string="x = 2")
    assert r.is_error and "read x.py" in r.content
    ex(tb, "read_file", path="x.py")
    p.write_text("x = 1  # someone else\n")         # changed behind the agent's back
    r = ex(tb, "edit_file", path="x.py", old_string="x = 1", new_string="x = 2")
    assert r.is_error and "changed on disk" in r.content
    assert p.read_text() == "x = 1  # someone else\n"
    ex(tb, "read_file", path="x.py")
    assert not ex(tb, "edit_file", path="x.py", old_string="x = 1", new_string="x = 2").is_error
    # our own write refreshes the record: a second edit needs no re-read
    assert not ex(tb, "edit_file", path="x.py", old_string="x = 2", new_string="x = 3").is_error
    assert p.read_text() == "x = 3  # someone else\n"


def test_writes_keep_mode_and_line_endings(tmp_path):
    p = tmp_path / "run.sh"
    p.write_bytes(b"#!/bin/sh\r\necho one\r\n")
    p.chmod(0o750)
    tb = Toolbox(tmp_path)
    assert ex(tb, "read_file", path="run.sh").content == "     1\t#!/bin/sh\n     2\techo one"
    assert not ex(tb, "edit_file", path="run.sh", old_string="echo one",
                  new_string="echo one\necho two").is_error
    assert p.read_bytes() == b"#!/bin/sh\r\necho one\r\necho two\r\n"
    assert stat.S_IMODE(p.stat().st_mode) == 0o750
    assert not ex(tb, "write_file", path="run.sh", content="#!/bin/sh\nexit 0\n").is_error
    assert p.read_bytes() == b"#!/bin/sh\r\nexit 0\r\n"
    assert stat.S_IMODE(p.stat().st_mode) == 0o750
    r = ex(tb, "write_file", path="new/dir/f.txt", content="hi\n")
    assert not r.is_error and (tmp_path / "new/dir/f.txt").read_text() == "hi\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new/dir/f.txt").stat().st_mode) == 0o666 & ~umask
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]   # no debris


def test_bash_output_exit_code_and_truncation(tmp_path):
    tb = Toolbox(tmp_path)
    r = ex(tb, "bash", command="echo out; echo err >&2; exit 3")
    assert r.content == "out\nerr\n[exit code 3]"
    r = ex(tb, "bash", command=f"{PY} -c \"print('x' * 100000)\"")
    assert "truncated" in r.content and len(r.content) < 31_000
    assert r.content.endswith("[exit code 0]")
    assert ex(tb, "bash", command="pwd").content.splitlines()[0] == str(tmp_path.resolve())
    assert ex(tb, "bash", command="echo hi", timeout=0).is_error


def test_bash_shows_workspace_paths_relative_to_it(tmp_path):
    # a real traceback: the frame inside the workspace reads as the path read_file takes
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("def f():\n    return 1 / 0\n")
    (tmp_path / "pkg" / "__init__.py").write_text("")
    tb = Toolbox(tmp_path)
    r = ex(tb, "bash", command=f"{PY} -c 'import pkg.mod; pkg.mod.f()'")
    assert 'File "pkg/mod.py", line 2, in f' in r.content
    assert str(tmp_path) not in r.content and str(tmp_path.resolve()) not in r.content
    assert ex(tb, "read_file", path="pkg/mod.py").content.endswith("return 1 / 0")
    # the workspace itself (no trailing slash) and paths outside it are left alone
    assert ex(tb, "bash", command="pwd; echo /etc/hosts").content.splitlines()[:2] == [
        str(tmp_path.resolve()), "/etc/hosts"]
    assert shell.relative_paths("/etc/hosts", Path("/")) == "/etc/hosts"


def test_bash_timeout_kills_the_command_and_its_children(tmp_path):
    # the child writes its pid, then would write a file 3 s later if it survived
    child = (f"{PY} -c \"import os, time; open('child.pid', 'w').write(str(os.getpid())); "
             f"time.sleep(3); open('survived', 'w').write('yes')\"")
    tb = Toolbox(tmp_path)
    t = time.monotonic()
    r = ex(tb, "bash", command=f"{child} & sleep 30", timeout=1)
    assert time.monotonic() - t < 10
    assert r.is_error and "timed out after 1s" in r.content
    pid = int((tmp_path / "child.pid").read_text())
    time.sleep(0.2)
    assert not alive(pid)                            # the child is gone, not orphaned
    time.sleep(3.2)
    assert not (tmp_path / "survived").exists()


def test_bash_leftover_background_children_are_killed(tmp_path):
    tb = Toolbox(tmp_path)
    r = ex(tb, "bash", command="sleep 30 & echo $! > bg.pid; echo started")
    assert r.content == "started\n[exit code 0]"
    pid = int((tmp_path / "bg.pid").read_text())
    time.sleep(0.2)
    assert not alive(pid)


GREP_FILES = {
    ".gitignore": "build/\n*.log\n!keep.log\n/rootonly.txt\n",
    "src/app.py": "import os\nTODO = 'fix me'\n",
    "src/util.py": "def helper():\n    return 'TODO later'\n",
    "src/.gitignore": "generated.py\n",
    "src/generated.py": "TODO generated\n",
    "build/out.py": "TODO built\n",
    "debug.log": "TODO in a log\n",
    "keep.log": "TODO kept\n",
    "rootonly.txt": "TODO root\n",
    "docs/rootonly.txt": "TODO docs\n",
    "docs/readme.md": "nothing here\n",
    ".hidden/notes.txt": "TODO hidden but not ignored\n",
}


def test_grep_respects_gitignore(tmp_path):
    make_repo(tmp_path, GREP_FILES)
    (tmp_path / "data.bin").write_bytes(b"TODO\x00binary")
    tb = Toolbox(tmp_path)
    out = ex(tb, "grep", pattern="TODO").content.splitlines()
    assert out == [".hidden/notes.txt:1:TODO hidden but not ignored",
                   "docs/rootonly.txt:1:TODO docs", "keep.log:1:TODO kept",
                   "src/app.py:2:TODO = 'fix me'", "src/util.py:2:    return 'TODO later'"]
    assert ex(tb, "grep", pattern="TODO", path="src", glob="app*").content == \
        "src/app.py:2:TODO = 'fix me'"
    assert ex(tb, "grep", pattern="zzz").content == "no matches"
    assert ex(tb, "grep", pattern="(unclosed").is_error
    assert ex(tb, "glob", pattern="**/*.py").content.splitlines() == ["src/app.py", "src/util.py"]
    assert ex(tb, "glob", pattern="*.py", path="src").content.splitlines() == \
        ["src/app.py", "src/util.py"]
    assert ex(tb, "list_dir", path="src").content.splitlines() == \
        [".gitignore", "app.py", "generated.py", "util.py"]


@pytest.mark.skipif(search.find_ripgrep() is None, reason="ripgrep is not installed")
@pytest.mark.parametrize("pattern,path,glob", [
    ("TODO", ".", None), ("TODO", "src", None), (r"^\s+return", ".", "*.py"),
    ("import|def", ".", "src/*.py"), ("TODO", "docs", None), ("x", "src/app.py", None)])
def test_grep_python_matches_ripgrep(tmp_path, pattern, path, glob):
    make_repo(tmp_path, GREP_FILES)
    root = tmp_path.resolve()
    start = (root / path).resolve()
    with_rg = search.grep(root, start, pattern, glob, lambda r: True, use_ripgrep=True)
    without = search.grep(root, start, pattern, glob, lambda r: True, use_ripgrep=False)
    assert with_rg == without


def test_todo_write_keeps_the_list(tmp_path):
    seen = []
    tb = Toolbox(tmp_path, on_todos=seen.append)
    r = ex(tb, "todo_write", todos=[{"content": "run tests", "status": "completed"},
                                    {"content": "fix add", "status": "in_progress"}])
    assert r.content == "[x] run tests\n[~] fix add"
    assert seen == [tb.todos] and tb.todos[1]["status"] == "in_progress"
    assert ex(tb, "todo_write", todos=[{"content": "x", "status": "done"}]).is_error


def test_shell_interrupt_kills_the_group(tmp_path):
    # KeyboardInterrupt while waiting (what Ctrl-C raises) must kill the running command
    import signal
    import threading
    pidfile = tmp_path / "p"
    # Python's own Ctrl-C handler, even when the tests were started with SIGINT ignored
    # (`cmd &` in a script does that, and then no KeyboardInterrupt would ever come)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            shell.run_command("echo $$ > p; sleep 30", tmp_path, timeout=20)   # runs in tmp_path
    finally:
        signal.signal(signal.SIGINT, old)
    pid = int(pidfile.read_text())
    time.sleep(0.1)
    assert not alive(pid)


def test_read_file_pages_by_size_too(tmp_path):
    (tmp_path / "wide.txt").write_text(("y" * 1500 + "\n") * 300)
    r = ex(Toolbox(tmp_path), "read_file", path="wide.txt")
    assert len(r.content) < 110_000
    assert r.content.splitlines()[-1].startswith("[showing lines 1-")
    assert "read more with offset=" in r.content


def test_a_toolbox_offers_only_the_tools_it_is_given(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    tb = Toolbox(tmp_path, tools=("read_file", "bash"))
    assert [s["name"] for s in tb.schemas()] == ["read_file", "bash"]
    assert not ex(tb, "read_file", path="a.py").is_error
    r = ex(tb, "write_file", path="b.py", content="y = 2\n")
    assert r.is_error and "unknown tool 'write_file'" in r.content and "read_file, bash" in r.content
    assert not (tmp_path / "b.py").exists()
    with pytest.raises(ValueError, match="unknown tool"):
        Toolbox(tmp_path, tools=("read_file", "teleport"))


def test_compact_mode_offers_the_core_tools_small_models_are_trained_with(tmp_path):
    from groundup.agent.loop import Agent
    from groundup.agent.tools import CORE_TOOLS
    assert [s["name"] for s in Agent(None, tmp_path, compact_prompt=True).toolbox.schemas()] == \
        [n for n in ("read_file", "edit_file", "bash", "grep", "diagnostics") if n in CORE_TOOLS]
    assert len(Agent(None, tmp_path, compact_prompt=False).toolbox.schemas()) == 9
