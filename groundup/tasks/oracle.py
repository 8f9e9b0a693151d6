"""Oracle trajectories for fine-tuning: the agent's real tools, driven by a policy that knows
the fix, recorded as the conversations the agent will have at evaluation time.

Design choices:
- Everything the model will see is real: the system prompt and tool schemas come from
  groundup.agent (`system_prompt`, `Toolbox.schemas`), the user turn is the task's problem
  statement, and every tool call is executed by the agent's own `Toolbox` in a fresh copy of
  the task's repository. Only the *choice* of calls is scripted, from the gold edits that the
  generator recorded in task.json. A trajectory that does not end in a solved task (checked by
  running the tests) is a bug and is never written.
- Short and regular, because the model that learns from them is tiny (a few million
  parameters, 1-2k tokens of context): run the one failing test (`python -m unittest -q ID`),
  find the function, read just that function (grep gives its line, read_file its range), edit
  one line copied from what was just read, run the test again, answer in one line.
- Varied where variety teaches something: search first (grep then a ranged read) or read first
  (the whole module named by the test's import); tier 2 follows the call from the wrapper into
  the helper's module.
- Recoveries, because a model that never saw one repeats its mistake forever: an edit whose
  old_string does not match (copied with the read_file line-number prefix, or written as the
  intended line) answered by re-reading and a correct edit; and a wrong first guess (reading
  the test file first) followed by the right file.
- Output: JSONL, one {"messages": [...], "tools": [...], "task": id} per line, the shape
  groundup/chat/format.py `render_conversation(messages, tools, tokenizer)` renders.
"""

from __future__ import annotations

import random
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable

from groundup.agent.prompt import system_prompt
from groundup.agent.tools import Toolbox, ToolResult
from groundup.chat.types import ToolCall
from groundup.io import append_jsonl
from groundup.tasks.check import (TaskInfo, check, load_task, python_on_path, remove_scratch,
                                  scratch_copy)

P_SEARCH_FIRST = 0.6      # grep + ranged read, else read the whole module
P_BAD_EDIT = 0.15         # recovery: an edit that does not match, then re-read and fix
P_WRONG_FILE = 0.1        # recovery: read the test file first


class Recorder:
    """Runs tool calls for real in `root` and records the conversation."""

    def __init__(self, task: TaskInfo, root: Path, compact: bool = True):
        self.task, self.root = task, Path(root)
        self.toolbox = Toolbox(self.root)
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": system_prompt(self.root, self.toolbox, compact)},
            {"role": "user", "content": task.problem_statement}]
        self.calls = 0

    def call(self, text: str, name: str, **arguments: Any) -> ToolResult:
        self.calls += 1
        call = ToolCall(name, arguments, id=f"call_{self.calls}")
        self.messages.append({"role": "assistant", "content": text,
                              "tool_calls": [call.to_dict()]})
        result = self.toolbox.execute(call)
        self.messages.append({"role": "tool", "tool_call_id": call.id, "name": name,
                              "content": result.content})
        return result

    def answer(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})


def _test_command(ids: Iterable[str]) -> str:
    return "python -m unittest -q " + " ".join(ids)


def _block_length(lines: list[str], start: int) -> int:
    """How many lines the def/class starting at 0-based `start` spans (no trailing blanks)."""
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (not lines[end].strip()
                                or len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return end - start


def _grep_line(result: ToolResult, path: str) -> int | None:
    for line in result.content.splitlines():
        m = re.match(r"(.+?):(\d+):", line)
        if m and m.group(1) == path:
            return int(m.group(2))
    return None


def _locate(rec: Recorder, rng: random.Random, path: str, symbol: str, kind: str,
            text: str) -> None:
    """Show the model the code of `symbol` (a function or class) in `path`."""
    if rng.random() < P_SEARCH_FIRST:
        pattern = f"{kind} {symbol}\\b"
        found = rec.call(text, "grep", pattern=pattern)
        line = _grep_line(found, path)
        assert line is not None, f"grep {pattern!r} did not find {path}: {found.content}"
        lines = (rec.root / path).read_text(encoding="utf-8").splitlines()
        rec.call(f"{symbol} is at {path}:{line}. Let me read it.", "read_file", path=path,
                 offset=line, limit=_block_length(lines, line - 1))
    else:
        rec.call(f"{symbol} is in {path}. Let me read it.", "read_file", path=path)


def _symbol(gold: dict[str, Any]) -> tuple[str, str]:
    """What to look up for a gold edit: ("def", function) or ("class", Class)."""
    unit = gold.get("unit", gold["function"])
    if unit[:1].isupper():
        return unit, "class"
    return unit, "def"


def _describe(gold: dict[str, Any]) -> str:
    if gold["kind"] == "implement":
        return f"{gold['function']} is only a stub. I will implement it from its docstring."
    old_last = gold["old"].splitlines()[-1].strip()
    new_last = gold["new"].splitlines()[-1].strip()
    if gold["kind"] == "missing_return":
        return f"{gold['function']} never returns its result: `{new_last}` is missing."
    return f"This line disagrees with the docstring: `{old_last}` should be `{new_last}`."


def _bad_old_string(rec: Recorder, gold: dict[str, Any], rng: random.Random) -> str:
    """A plausible wrong old_string: copied with read_file's line-number prefix, or retyped
    with the spacing wrong."""
    old = gold["old"]
    first = old.splitlines()[0]
    squeezed = old.replace(", ", ",").replace(" + ", "+").replace(" - ", "-").replace(" * ", "*")
    if rng.random() < 0.5 or squeezed == old:
        lines = (rec.root / gold["path"]).read_text(encoding="utf-8").splitlines()
        n = lines.index(first) + 1 if first in lines else gold["line"]
        return f"{n:>6}\t{first}"
    return squeezed


def _edit(rec: Recorder, gold: dict[str, Any], rng: random.Random) -> None:
    path = gold["path"]
    if rng.random() < P_BAD_EDIT:
        bad = _bad_old_string(rec, gold, rng)
        if (rec.root / path).read_text(encoding="utf-8").count(bad) == 0:
            r = rec.call(_describe(gold), "edit_file", path=path, old_string=bad,
                         new_string=gold["new"])
            assert r.is_error, "the deliberately wrong edit matched"
            symbol, kind = _symbol(gold)
            text = "The edit did not match. Let me read the code again and copy the line exactly."
            lines = (rec.root / path).read_text(encoding="utf-8").splitlines()
            start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith(f"{kind} {symbol}"))
            rec.call(text, "read_file", path=path, offset=start + 1,
                     limit=_block_length(lines, start))
            r = rec.call("Now with the exact text.", "edit_file", path=path,
                         old_string=gold["old"], new_string=gold["new"])
            assert not r.is_error, r.content
            return
    r = rec.call(_describe(gold), "edit_file", path=path, old_string=gold["old"],
                 new_string=gold["new"])
    assert not r.is_error, r.content


def _module_of_test(test_id: str, rec: Recorder) -> str | None:
    """The module a test file imports from (`from pkg.mod import ...` -> pkg/mod.py)."""
    test_path = "/".join(test_id.split(".")[:-2]) + ".py"
    try:
        text = (rec.root / test_path).read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(r"^from ([\w.]+) import", text, re.M)
    return m.group(1).replace(".", "/") + ".py" if m else None


def solve(task: TaskInfo, root: Path, rng: random.Random, compact: bool = True) -> list[dict[str, Any]]:
    """Record one oracle trajectory in the working copy `root`; returns the messages."""
    rec = Recorder(task, root, compact)
    golds = sorted(task.record["gold"], key=lambda g: (g["path"], g["line"]))
    first = task.fail_to_pass[0]
    if len(golds) > 1:   # two bugs: run every failing test module at once
        modules = sorted({".".join(t.split(".")[:-2]) for t in task.fail_to_pass})
        run_ids = modules
    else:
        run_ids = [first]
    rec.call("Let me run the failing test.", "bash", command=_test_command(run_ids))
    if rng.random() < P_WRONG_FILE:
        test_path = "/".join(first.split(".")[:-2]) + ".py"
        rec.call("Let me look at the test first.", "read_file", path=test_path)
    for gold in golds:
        symbol, kind = _symbol(gold)
        caller = gold.get("called_from")
        if caller:   # tier 2: read the function the test calls, then follow it to the helper
            _locate(rec, rng, caller["path"], caller["function"], "def",
                    f"The test calls {caller['function']}. Let me find it.")
            text = f"{caller['function']} calls {symbol}. Let me find where {symbol} is defined."
            found = rec.call(text, "grep", pattern=f"def {symbol}\\b")
            line = _grep_line(found, gold["path"])
            assert line is not None, found.content
            lines = (rec.root / gold["path"]).read_text(encoding="utf-8").splitlines()
            rec.call(f"{symbol} is at {gold['path']}:{line}. Let me read it.", "read_file",
                     path=gold["path"], offset=line, limit=_block_length(lines, line - 1))
        else:
            _locate(rec, rng, gold["path"], symbol, kind,
                    f"Let me find {symbol}." if gold is golds[0] else f"Now {symbol}.")
        _edit(rec, gold, rng)
    result = rec.call("Let me run the test again.", "bash", command=_test_command(run_ids))
    assert "OK" in result.content, result.content
    fixed = ", ".join(sorted({g["path"] for g in golds}))
    what = "implemented the missing function" if golds[0]["kind"] == "implement" else \
        ("fixed two bugs" if len(golds) > 1 else "fixed the bug")
    rec.answer(f"I {what} in {fixed}; the failing test now passes.")
    return rec.messages


def record_one(task_dir: str | Path, seed: int = 0, compact: bool = True,
               verify: bool = True) -> dict[str, Any]:
    """One verified trajectory: {"task", "messages", "tools"}. Call inside python_on_path()."""
    task = load_task(task_dir)
    work = scratch_copy(task)
    try:
        rng = random.Random(f"groundup-oracle:{seed}:{task.id}")
        messages = solve(task, work, rng, compact)
        if verify and not check(task, work).solved:
            raise AssertionError(f"oracle trajectory for {task.id} does not solve it")
        return {"task": task.id, "messages": messages, "tools": Toolbox(work).schemas()}
    finally:
        remove_scratch(work)


def record(task_dirs: Iterable[str | Path], out_path: str | Path, seed: int = 0,
           compact: bool = True, workers: int = 1, verify: bool = True,
           progress: Callable[[int], None] | None = None) -> int:
    """Solve each task with the oracle and append one JSONL line per task to out_path.

    With verify, each final state is also checked by running all of the task's tests (one
    more subprocess per task); the oracle's own last test run is checked either way.
    Threads suffice for `workers`: the time goes to test subprocesses, not Python.
    """
    dirs = list(task_dirs)
    with python_on_path(), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        n = 0
        for row in pool.map(lambda d: record_one(d, seed, compact, verify), dirs):
            append_jsonl(out_path, row)
            n += 1
            if progress is not None:
                progress(n)
    return n
