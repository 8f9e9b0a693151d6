"""Load tasks from disk and check a solution by running its tests for real.

Design choices:
- Any directory of SWE-bench-shaped tasks works: `DIR/<id>/task.json` + `DIR/<id>/repo/`, or a
  single task directory. Only `id`, `problem_statement`, `fail_to_pass` and `pass_to_pass`
  are required; `tier` and `bug_kind` default to 0 and "unknown".
- One subprocess per check runs every test of the task (fail_to_pass + pass_to_pass) with a
  small runner that loads each id separately and prints one JSON line of per-test outcomes:
  one interpreter start instead of dozens, and no parsing of unittest's human-readable output,
  which changes between Python versions.
- Before checking, the task's test files are restored from the original repository and test
  files the agent added are removed, so editing the tests never counts as a fix.
- The subprocess runs with `-B` (no `__pycache__` written into the repository) and a timeout:
  a fix that loops forever is a failed fix, not a hung evaluation.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from groundup.errors import UserError

_RUNNER = r'''
import io, json, sys, unittest
out = {}
real_stdout = sys.stdout
for tid in sys.argv[1:]:
    sys.stdout = io.StringIO()  # a test that prints must not corrupt the report line
    try:
        suite = unittest.defaultTestLoader.loadTestsFromName(tid)
        result = unittest.TestResult()
        suite.run(result)
        if result.errors:
            out[tid] = "error"
        elif result.failures or result.unexpectedSuccesses:
            out[tid] = "fail"
        elif result.testsRun == 0 or result.skipped:
            out[tid] = "missing"
        else:
            out[tid] = "pass"
    except BaseException as e:  # import errors, SystemExit from a module, ...
        out[tid] = "error"
    finally:
        sys.stdout = real_stdout
print("@@GROUNDUP-RESULTS@@" + json.dumps(out))
'''


@dataclass
class TaskInfo:
    """A task as read from disk (ours or anyone's in the same shape)."""
    dir: Path
    id: str
    problem_statement: str
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    tier: int = 0
    bug_kind: str = "unknown"
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.dir / "repo"


def load_task(task_dir: str | Path) -> TaskInfo:
    task_dir = Path(task_dir)
    path = task_dir / "task.json"
    try:
        rec = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as e:        # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(f"cannot read {path}: {e} -- a task is a directory with task.json "
                        "and repo/") from None
    if not isinstance(rec, dict):
        raise UserError(f"{path} is not a JSON object -- a task is a directory with task.json and repo/")
    missing = [k for k in ("id", "problem_statement", "fail_to_pass") if k not in rec]
    if missing or not (task_dir / "repo").is_dir():
        raise UserError(f"{task_dir} is not a task: task.json needs id, problem_statement, "
                        f"fail_to_pass, pass_to_pass (missing: {missing}) and a repo/ beside it")
    lists = {k: rec.get(k, []) for k in ("fail_to_pass", "pass_to_pass")}
    bad = [k for k, v in lists.items() if not (isinstance(v, list) and all(isinstance(t, str) for t in v))]
    if bad or not isinstance(rec.get("tier", 0) or 0, int):
        raise UserError(f"{path}: {', '.join(bad) or 'tier'} has the wrong type (test ids are lists of "
                        "strings such as \"tests.test_x.T.test_y\"; tier is 1, 2 or 3)")
    return TaskInfo(task_dir, str(rec["id"]), str(rec["problem_statement"]), list(rec["fail_to_pass"]),
                    list(rec.get("pass_to_pass", [])), int(rec.get("tier", 0) or 0),
                    str(rec.get("bug_kind", "unknown")), rec)


def load_tasks(path: str | Path) -> list[TaskInfo]:
    """A single task directory, or a directory of them (sorted by id)."""
    path = Path(path)
    if (path / "task.json").is_file():
        return [load_task(path)]
    if not path.is_dir():
        raise UserError(f"{path} does not exist -- pass a directory of tasks "
                        "(make one with `groundup tasks generate`)")
    tasks = [load_task(p) for p in sorted(path.iterdir()) if (p / "task.json").is_file()]
    if not tasks:
        raise UserError(f"no tasks in {path}: expected subdirectories with task.json and repo/")
    return sorted(tasks, key=lambda t: t.id)


# limits for test processes: generous for unit tests of small repos, far from the machine's size
MEMORY_LIMIT_KB = 4 * 1024 * 1024
CPU_LIMIT_S = 60


def _limit_resources() -> None:
    """In the child, before exec: cap address space and CPU time (see python_on_path)."""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_KB * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S,) * 2)


def run_tests(repo: str | Path, test_ids: list[str], timeout: float = 60.0) -> dict[str, str]:
    """Run unittest ids from `repo` in one subprocess: id -> pass | fail | error | missing |
    timeout."""
    if not test_ids:
        return {}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        proc = subprocess.run([sys.executable, "-B", "-c", _RUNNER, *test_ids], cwd=repo,
                              capture_output=True, text=True, timeout=timeout, env=env,
                              preexec_fn=_limit_resources)
    except subprocess.TimeoutExpired:
        return {t: "timeout" for t in test_ids}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("@@GROUNDUP-RESULTS@@"):
            got = json.loads(line[len("@@GROUNDUP-RESULTS@@"):])
            return {t: got.get(t, "error") for t in test_ids}
    # the runner itself died (e.g. a module called os._exit): nothing passed
    return {t: "error" for t in test_ids}


def is_test_path(rel: str | Path) -> bool:
    parts = Path(rel).parts
    name = parts[-1]
    return (any(p in ("tests", "test") for p in parts[:-1]) or name.startswith("test_")
            or name.endswith("_test.py") or name == "conftest.py")


def restore_tests(original_repo: str | Path, work_repo: str | Path) -> None:
    """Put the original test files back and drop test files that were added."""
    original_repo, work_repo = Path(original_repo), Path(work_repo)
    originals = {p.relative_to(original_repo) for p in original_repo.rglob("*") if p.is_file()
                 and "__pycache__" not in p.parts}
    for rel in originals:
        if is_test_path(rel):
            dest = work_repo / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(original_repo / rel, dest)
    for p in list(work_repo.rglob("*.py")):
        rel = p.relative_to(work_repo)
        if is_test_path(rel) and rel not in originals:
            p.unlink()


@dataclass
class CheckResult:
    solved: bool
    fail_to_pass: dict[str, str]
    pass_to_pass: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"solved": self.solved, "fail_to_pass": self.fail_to_pass,
                "pass_to_pass": self.pass_to_pass}


def check(task: TaskInfo, work_repo: str | Path, restore: bool = True,
          timeout: float = 60.0) -> CheckResult:
    """Is the task solved in `work_repo`? Every fail_to_pass test passes and every
    pass_to_pass test still passes."""
    if restore:
        restore_tests(task.repo, work_repo)
    got = run_tests(work_repo, task.fail_to_pass + task.pass_to_pass, timeout)
    f2p = {t: got[t] for t in task.fail_to_pass}
    p2p = {t: got[t] for t in task.pass_to_pass}
    solved = all(v == "pass" for v in f2p.values()) and all(v == "pass" for v in p2p.values())
    return CheckResult(solved, f2p, p2p)


def fresh_copy(task: TaskInfo, dest: str | Path) -> Path:
    """A working copy of the task's repository at dest (replaced if it exists)."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(task.repo, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def scratch_copy(task: TaskInfo) -> Path:
    """A working copy at /tmp/groundup-XXXX/repo. The oracle (training) and the evaluation use
    the same shape, so the path in the system prompt and in tracebacks looks alike in both --
    short, and without the task id (which would tell a model train from held-out)."""
    return fresh_copy(task, Path(tempfile.mkdtemp(prefix="groundup-")) / "repo")


def remove_scratch(work: Path) -> None:
    shutil.rmtree(work.parent if work.name == "repo" else work, ignore_errors=True)


def apply_gold(task: TaskInfo, work_repo: str | Path) -> None:
    """Apply the gold edits recorded by our generator (tests and debugging)."""
    for g in task.record.get("gold", []):
        path = Path(work_repo) / g["path"]
        text = path.read_text(encoding="utf-8")
        if text.count(g["old"]) != 1:
            raise ValueError(f"{task.id}: gold edit does not match {g['path']} exactly once")
        path.write_text(text.replace(g["old"], g["new"]), encoding="utf-8")


@contextlib.contextmanager
def python_on_path() -> Iterator[None]:
    """Make `python` and `python3` in the agent's shell mean this interpreter.

    The tests then run under the same Python as the checker, and a version manager's shim
    (pyenv's costs ~0.5 s a call) stays out of every test run the agent makes. It changes
    this process's PATH, which the bash tool passes on, until the block ends.
    """
    with tempfile.TemporaryDirectory(prefix="groundup-bin-") as bin_dir:
        for name in ("python", "python3"):
            # a shell shim, not a symlink: it caps memory and CPU time, so a buggy edit that
            # loops while growing a list (the model's, or a task's) cannot take the machine down
            shim = os.path.join(bin_dir, name)
            with open(shim, "w") as f:
                f.write(f"#!/bin/sh\nulimit -v {MEMORY_LIMIT_KB} 2>/dev/null; ulimit -t {CPU_LIMIT_S} 2>/dev/null\n"
                        f"exec {shlex.quote(sys.executable)} \"$@\"\n")
            os.chmod(shim, 0o755)
        old = os.environ.get("PATH", "")
        os.environ["PATH"] = bin_dir + os.pathsep + old
        try:
            yield
        finally:
            os.environ["PATH"] = old
