"""The machinery of the fault table: one `Case` per row, run as a real `groundup` process.

Each case gets a fresh workspace (its cwd, its HOME, its config and log directories), built by
the case's `setup` steps. The command runs in it; then the checks every row shares:

- the exit code is the row's (2 bad input, 1 failure, 0 handled, 130/143 signals);
- no traceback and no "internal error" on stderr;
- for a non-zero exit, stderr holds exactly one line that is not a warning, the last one,
  starting `groundup:` and matching the row's `says` (what was wrong, what to do);
- nothing in the workspace changed except what the row's `outputs` globs allow (a refused
  command writes nothing; a fault loses nothing);
- the row's own `check(ws, proc)`, if any.

Placeholders in argv: {ws} the workspace, {url} the fault server (its mode in `server`),
{py} this Python. Setup steps are names in SETUPS (or functions of the workspace).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from faults_servers import FaultServer

PY = sys.executable


@dataclass
class Case:
    id: str
    family: str
    argv: str
    code: int
    says: str = ""                               # a substring of the final stderr line
    setup: tuple = ()                            # SETUPS names or callables(ws)
    outputs: tuple[str, ...] = ()                # globs (relative to ws) allowed to change
    env: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None
    server: str | None = None                    # a FaultServer mode
    signal: tuple[int, float] | None = None      # (signum, seconds after start)
    timeout: float = 90
    check: Callable[[Path, Any], None] | None = None
    defect: int | None = None                    # the numbered defect this row shows
    stdout: str | None = None                    # a substring stdout must hold


# ----------------------------------------------------------------------------- shared artifacts

class Shared:
    """Artifacts made once per session (a tiny model, a tokenizer, a task) and copied into the
    workspaces that need them, so a case can never damage another's input."""

    def __init__(self, root: Path):
        self.root = root
        self._made: dict[str, Path] = {}
        self._lock = threading.RLock()        # cases run in parallel threads

    def get(self, name: str) -> Path:
        with self._lock:
            if name not in self._made:
                self._made[name] = getattr(self, f"_make_{name}")(self.root / name)
            return self._made[name]

    def _make_tok(self, d: Path) -> Path:
        from groundup.tokenizer import train_tokenizer
        text = "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n" * 20
        train_tokenizer([text], vocab_size=320, progress=False).save(d)
        return d

    def _make_model(self, d: Path) -> Path:
        import torch

        from groundup.model import ModelConfig, Transformer, save_model
        from groundup.tokenizer import load_tokenizer
        tok = load_tokenizer(self.get("tok"))
        torch.manual_seed(0)
        model = Transformer(ModelConfig.from_depth(1, tok.vocab_size, max_seq_len=64))
        model.init_weights()
        save_model(model, d)
        tok.save(d)
        return d

    def _make_tasks(self, d: Path) -> Path:
        from groundup.tasks.generate import generate_task
        generate_task(0, 1, "train").write(d)
        return d


def copy_in(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)


# ----------------------------------------------------------------------------- setups

def write(rel: str, data: str | bytes) -> Callable[[Path, Shared], None]:
    def step(ws: Path, shared: Shared) -> None:
        p = ws / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    step.__name__ = f"write:{rel}"
    return step


def jsonl(rel: str, rows: list) -> Callable[[Path, Shared], None]:
    return write(rel, "".join(json.dumps(r) + "\n" for r in rows))


def truncate(rel: str, keep: int | float) -> Callable[[Path, Shared], None]:
    """Cut a file to `keep` bytes (an int) or that share of its length (a float)."""
    def step(ws: Path, shared: Shared) -> None:
        p = ws / rel
        data = p.read_bytes()
        p.write_bytes(data[:keep if isinstance(keep, int) else int(len(data) * keep)])
    return step


def corrupt(rel: str, at: int, junk: bytes) -> Callable[[Path, Shared], None]:
    def step(ws: Path, shared: Shared) -> None:
        p = ws / rel
        data = bytearray(p.read_bytes())
        data[at:at + len(junk)] = junk
        p.write_bytes(bytes(data))
    return step


def flip(rel: str, at: int) -> Callable[[Path, Shared], None]:
    """Flip one bit of byte `at` (negative: from the end): damage that keeps the length."""
    def step(ws: Path, shared: Shared) -> None:
        p = ws / rel
        data = bytearray(p.read_bytes())
        data[at] ^= 0x01
        p.write_bytes(bytes(data))
    return step


def shared(name: str, rel: str | None = None) -> Callable[[Path, Shared], None]:
    def step(ws: Path, sh: Shared) -> None:
        copy_in(sh.get(name), ws / (rel or name))
    return step


SETUPS: dict[str, Callable[[Path, Shared], None]] = {
    "model": shared("model"),
    "tok": shared("tok"),
    "tasks": shared("tasks"),
    "file": write("afile", "I am a file, not a directory\n"),
    "emptydir": lambda ws, sh: (ws / "emptydir").mkdir(),
    "text": write("data/a.py", "def f(x):\n    return x + 1\n" * 50),
    "script": jsonl("script.jsonl", [{"content": "done"}]),
    "repo": lambda ws, sh: (ws / ".git").mkdir(),
}


# ----------------------------------------------------------------------------- one run

def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink() or p.is_dir():
                out[rel] = ("dir",)
                continue
            try:
                out[rel] = ("file", hashlib.sha1(p.read_bytes()).hexdigest())
            except OSError:
                out[rel] = ("unreadable",)
    return out


def cli_env(ws: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GROUNDUP_MODEL", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                        "ANTHROPIC_BASE_URL", "GROUNDUP_HTTP_TIMEOUT", "GROUNDUP_HTTP_RETRIES",
                        "GROUNDUP_TRACEBACK")}
    home = ws / "home"
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"),
               GROUNDUP_LOG_DIR=str(home / "logs"), PYTHONUNBUFFERED="1", COLUMNS="200",
               GROUNDUP_HTTP_RETRIES="2")   # retries back off 0.5-1 s, then 1-2 s: a row stays short
    return env


def run_case(case: Case, tmp: Path, sh: Shared) -> subprocess.CompletedProcess:
    ws = tmp / "ws"
    (ws / "home").mkdir(parents=True)
    for step in case.setup:
        (SETUPS[step] if isinstance(step, str) else step)(ws, sh)
    server = FaultServer(case.server) if case.server else None
    try:
        fill = {"{ws}": str(ws), "{py}": PY, "{url}": server.url if server else "http://127.0.0.1:9"}
        argv = []
        for a in shlex.split(case.argv):
            for k, v in fill.items():
                a = a.replace(k, v)
            argv.append(a)
        before = snapshot(ws)
        env = cli_env(ws)
        env.update({k: v.replace("{ws}", str(ws)) for k, v in case.env.items()})
        proc = subprocess.Popen([PY, "-m", "groundup", *argv], cwd=ws, env=env, text=True,
                                stdin=subprocess.PIPE if case.stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                # a test run in the background (`make test &`) has SIGINT ignored,
                                # the child would inherit that and Ctrl-C could never reach it
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        if case.signal:
            signum, after = case.signal
            time.sleep(after)
            os.kill(proc.pid, signum)
        try:
            out, err = proc.communicate(case.stdin, timeout=case.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"{case.id}: still running after {case.timeout}s (a hang)\n{err[-2000:]}")
        result = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        result.requests = server.requests if server else 0
    finally:
        if server:
            server.close()
    check_result(case, result, ws, before)
    return result


def check_result(case: Case, p: subprocess.CompletedProcess, ws: Path, before: dict) -> None:
    where = f"{case.id}: {' '.join(p.args)}\nexit {p.returncode}\nstderr:\n{p.stderr[-3000:]}\nstdout:\n{p.stdout[-1500:]}"
    assert p.returncode == case.code, where
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, where
    # the workspace's path holds the case's id: match `says` against the message without it
    lines = [ln.replace(str(ws), "{ws}") for ln in p.stderr.splitlines() if ln.strip()]
    if case.code != 0:
        final = [ln for ln in lines if not ln.startswith("groundup: warning:")]
        assert len(final) == 1, f"expected one line saying what is wrong\n{where}"
        assert final[0] == lines[-1] and final[0].startswith("groundup:"), where
        assert case.says.lower() in final[0].lower(), f"expected {case.says!r} in the error\n{where}"
    elif case.says:
        assert case.says.lower() in p.stderr.lower(), where
    if case.stdout is not None:
        assert case.stdout in p.stdout, where
    after = snapshot(ws)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    unexpected = [k for k in changed if not any(fnmatch.fnmatch(k, g) for g in case.outputs)]
    assert not unexpected, f"files changed outside the intended output: {unexpected[:8]}\n{where}"
    if case.check is not None:
        case.check(ws, p)


def run_all(cases: list[Case], tmp_root: Path, sh: Shared, workers: int) -> dict[str, BaseException | None]:
    """Run cases `workers` at a time (each is a separate process, and many of them mostly wait:
    on a stalled server, a signal, a retry's backoff); case id -> its failure, or None."""
    def one(case: Case) -> BaseException | None:
        d = tmp_root / case.id
        d.mkdir()
        try:
            run_case(case, d, sh)
            return None
        except BaseException as e:  # noqa: BLE001 -- reported by the case's own test
            return e
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip([c.id for c in cases], pool.map(one, cases)))
