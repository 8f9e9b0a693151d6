"""The `bash` tool's engine: run a command in the workspace, and leave nothing behind.

Design choices:
- The command runs in its own session (`start_new_session=True`), so it heads a process
  group of its own. On timeout, on Ctrl-C and when the command returns, the *whole group*
  is killed: a `sleep 1000 &` or a forked test server cannot outlive its call. (A process
  that calls setsid() itself escapes any group; that is the limit of this guard, which the
  sandbox's pid namespace closes: sandbox.py.)
- stdout and stderr go to one temporary file, interleaved in the order they happened, as a
  user would see them in a terminal. A file rather than a pipe: no deadlock when a command
  writes more than a pipe holds, no hang when a background child keeps the pipe open, and
  huge output costs disk, not memory -- only the head and tail are read back.
- Output over the limit keeps its head and tail with a note of what was cut in between:
  the first error and the final summary line are the two parts worth keeping.
- stdin is /dev/null (a command that waits for input fails fast instead of hanging), and
  pagers are disabled (`git log` must not wait for `q`).
- Paths inside the workspace are shown relative to it (`File "pkg/mod.py", line 3` in a
  traceback, not `/tmp/groundup-x1y2/repo/pkg/mod.py`): the same spelling the model passes to
  read_file and edit_file, so it can copy a path straight from the output; shorter; and the
  same text whichever temporary directory a run happens to use.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

MAX_OUTPUT_CHARS = 30_000


@dataclass
class ShellResult:
    output: str
    exit_code: int | None      # None when killed by the timeout
    timed_out: bool
    seconds: float


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass                   # the group is already gone


def _read_clipped(f, limit: int) -> str:
    size = f.seek(0, os.SEEK_END)
    f.seek(0)
    if size <= limit:
        return f.read().decode("utf-8", errors="replace")
    head = f.read(limit // 2).decode("utf-8", errors="replace")
    f.seek(size - limit // 2)
    tail = f.read().decode("utf-8", errors="replace")
    cut = size - 2 * (limit // 2)
    return f"{head}\n\n[... {cut} bytes of output truncated ...]\n\n{tail}"


def run_command(command: str, cwd: Path, timeout: float = 120.0, limit: int = MAX_OUTPUT_CHARS,
                wrap: Callable[[list[str]], list[str]] | None = None) -> ShellResult:
    """Run `command` with bash in `cwd`; `wrap` turns the command line into a sandboxed one
    (sandbox.py)."""
    env = dict(os.environ, PAGER="cat", GIT_PAGER="cat", TERM="dumb", NO_COLOR="1")
    start = time.monotonic()
    with tempfile.TemporaryFile() as out:
        argv = ["bash", "-c", command]
        proc = subprocess.Popen(wrap(argv) if wrap else argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        except BaseException:
            # Ctrl-C (KeyboardInterrupt) or anything else: kill the command, then let the
            # interrupt go on up to cancel the turn
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            # kill what is left in the group: the command on timeout, its background
            # children otherwise
            _kill_group(proc)
        proc.wait()
        output = _read_clipped(out, limit)
    return ShellResult(output, None if timed_out else proc.returncode, timed_out,
                       time.monotonic() - start)


def relative_paths(text: str, root: Path) -> str:
    """`text` with every `<root>/` prefix removed (the root as given and as resolved). A
    workspace at the filesystem's root keeps its output as it is (every path would lose its /)."""
    if Path(root).resolve().parent == Path(root).resolve():
        return text
    for prefix in sorted({os.path.join(str(root), ""), os.path.join(str(Path(root).resolve()), "")},
                         key=len, reverse=True):
        text = text.replace(prefix, "")
    return text


def format_result(r: ShellResult, timeout: float) -> str:
    """What the model reads: the output, then one status line."""
    text = r.output.rstrip("\n")
    if r.timed_out:
        status = (f"[timed out after {timeout:g}s: the command and its child processes were "
                  "killed; use a longer `timeout` or a faster command]")
    elif r.exit_code == 0:
        status = "[exit code 0]"
    elif r.exit_code is not None and r.exit_code < 0:
        status = f"[killed by signal {-r.exit_code}]"
    else:
        status = f"[exit code {r.exit_code}]"
    return f"{text}\n{status}" if text else f"(no output)\n{status}"
