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
  parameters, 1-2k tokens of context): run the test suite (`python -m unittest -q`, the same
  command every time: nothing to copy; optionally only its first lines, `test_command`), find the function (read the module the test names,
  or grep for its def and read from that line), edit one line copied from what was just
  read (indentation included), run the
  tests again, answer in one line. When the traceback ends on the buggy line (every tier-1
  task), that line is read again on its own first, so the edit copies from a one-line output.
  The prose names nothing it would have to copy (a name after a space is a different BPE
  token from the same name in a path or a traceback).
- Varied where variety teaches something: search first (grep then a ranged read) or read first
  (the whole module named by the test's import); tier 2 follows the call from the wrapper into
  the helper's module.
- Recoveries, because a model that never saw one repeats its mistake forever: an edit whose
  old_string does not match (copied with the read_file line-number prefix, or written as the
  intended line) answered by re-reading and a correct edit; and a wrong first guess (reading
  the test file first) followed by the right file.
- Diagnostics before every edit, as a careful engineer reads the warnings: a wrong name often
  leaves a name unused (or reads one never defined), and the report names it with the tokens
  the code spells it with (agent/diagnostics.py), so the fix becomes a copy. "No problems
  found" is the other answer, and then the fix is local to the line.
- Output: JSONL, one {"messages": [...], "tools": [...], "task": id} per line, the shape
  groundup/chat/format.py `render_conversation(messages, tools, tokenizer)` renders.
"""

from __future__ import annotations

import random
import re
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from groundup.agent.prompt import system_prompt
from groundup.agent.tools import CORE_TOOLS, Toolbox, ToolResult
from groundup.chat.types import ToolCall
from groundup.io import append_jsonl
from groundup.tasks.check import (TaskInfo, check, load_task, python_on_path, remove_scratch,
                                  scratch_copy)
from groundup.tasks.generate import generate_task

# how the oracle finds the code, by tier: "read" the whole module the test is for (tier 1: it
# is where the bug is), "search" (grep for the def, then read from that line), or "guess" (a
# recovery: read a path that does not exist, then search)
PATHS = {1: {"read": 0.7, "search": 0.2, "guess": 0.1},
         2: {"search": 0.7, "read": 0.2, "guess": 0.1},
         3: {"search": 0.7, "read": 0.2, "guess": 0.1}}
P_BAD_EDIT = 0.15         # recovery: an edit that does not match, then re-read and fix


class Recorder:
    """Runs tool calls for real in `root` and records the conversation."""

    def __init__(self, task: TaskInfo, root: Path, compact: bool = True):
        self.task, self.root = task, Path(root)
        self.toolbox = Toolbox(self.root, tools=CORE_TOOLS if compact else None)
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": system_prompt(self.root, self.toolbox, compact)},
            {"role": "user", "content": task.problem_statement}]
        self.calls = 0

    def call(self, text: str, name: str, mistake: bool = False, **arguments: Any) -> ToolResult:
        """Run one tool call and record it with its result. `mistake`: a scripted wrong call,
        kept in the conversation (the model sees the error and the recovery) but marked
        `train: false`, so fine-tuning does not teach the mistake itself."""
        self.calls += 1
        call = ToolCall(name, arguments, id=f"call_{self.calls}")
        msg: dict[str, Any] = {"role": "assistant", "content": text, "tool_calls": [call.to_dict()]}
        if mistake:
            msg["train"] = False
        self.messages.append(msg)
        result = self.toolbox.execute(call)
        self.messages.append({"role": "tool", "tool_call_id": call.id, "name": name,
                              "content": result.content})
        return result

    def answer(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})


# The whole suite, found by unittest's discovery: the same command for every task, so the
# model never has to copy a test id (a long, repetitive string -- tests.test_medal.TestMedal.
# test_plow_gaps -- that small models copy wrong: test_medal.test_medal...), and the final run
# also shows that nothing else broke. Every failing test prints its traceback.
TEST_COMMAND = "python -m unittest -q"


def test_command(lines: int = 0) -> str:
    """The oracle's test command. `lines` > 0 keeps only the first `lines` lines of its output
    (`2>&1 | head -n N`): unittest prints errors before failures, so the first block is an
    error's traceback when there is one -- the one that ends on the buggy line -- and the other
    failing tests' tracebacks (a third of a tier-1 trajectory's tokens) are left out. The exit
    code shown is then head's (0): the output, not the code, says whether the tests passed."""
    return f"{TEST_COMMAND} 2>&1 | head -n {lines}" if lines > 0 else TEST_COMMAND


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


def _test_path(test_id: str) -> str:
    return "/".join(test_id.split(".")[:-2]) + ".py"


def _called(rec: Recorder, test_id: str) -> list[str]:
    """Names called in a test's assertion: what the failing test's traceback shows."""
    lines = (rec.root / _test_path(test_id)).read_text(encoding="utf-8").splitlines()
    head = f"    def {test_id.split('.')[-1]}(self):"
    start = lines.index(head)
    for line in lines[start + 1:]:
        if line.startswith("    def "):
            break
        if "self.assert" in line:
            return [n for n in re.findall(r"(\w+)\(", line) if not n.startswith("assert")]
    return []


def _unit_block(rec: Recorder, path: str, unit: str) -> list[str]:
    """The lines of a top-level def/class, found by name (line numbers shift as we edit)."""
    lines = (rec.root / path).read_text(encoding="utf-8").splitlines()
    start = next(i for i, ln in enumerate(lines)
                 if re.match(rf"(def|class) {re.escape(unit)}\b", ln))
    return lines[start: start + _block_length(lines, start)]


def _entry(rec: Recorder, task: TaskInfo, path: str, unit: str) -> tuple[str, str]:
    """(name, test id): a name that a failing test's assertion calls and that `unit` defines
    (the function itself, or a method of the class), so the model can see it in the output."""
    block = _unit_block(rec, path, unit)
    defined = {unit} | set(re.findall(r"^\s+def (\w+)", "\n".join(block), re.M))
    for tid in task.fail_to_pass:
        for name in _called(rec, tid):
            if name in defined:
                return name, tid
    return unit, task.fail_to_pass[0]


def _read_range(rec: Recorder, path: str, line: int, text: str) -> None:
    # from the def to the end of the (small) module: the model copies the line number grep
    # printed and never has to guess how long the function is
    rec.call(text, "read_file", path=path, offset=line)


def _search(rec: Recorder, name: str, path: str, text: str) -> int:
    # `def\s+name`, not `def name`: the BPE writes ` name` after a space but `name` after `+`,
    # as the name is written in the traceback (`(name(`, `_name`) the model copies it from
    found = rec.call(text, "grep", pattern=f"def\\s+{name}\\b")
    line = _grep_line(found, path)
    assert line is not None, f"grep for {name} did not find {path}: {found.content}"
    return line


def _locate(rec: Recorder, rng: random.Random, mode: str, path: str, unit: str,
            bug_line: int | None = None) -> None:
    """Show the model the code of `unit` (a function or class) in `path`, starting from a name
    the failing test shows. Modes: search (grep for its def, then read that function), read
    (the whole module: the package named in the task + the test module's name), guess (a
    wrong path first, then search). A class is read whole unless the bug sits in the very
    method the test calls."""
    name, tid = _entry(rec, rec.task, path, unit)
    if mode == "read":
        rec.call("Let me read the module the test is for.", "read_file", path=path)
        return
    text = "Let me find the function the test calls."
    guess = _test_path(tid).split("/")[-1][len("test_"):]
    if mode == "guess" and (rec.root / guess).exists():
        mode = "search"                  # a flat layout: the guess would be right
    if mode == "guess":
        r = rec.call("Let me read the module the test is for.", "read_file", mistake=True, path=guess)
        assert r.is_error, "the wrong guess exists"
        text = "It does not exist. Let me search for the function."
    line = _search(rec, name, path, text)
    lines = (rec.root / path).read_text(encoding="utf-8").splitlines()
    inside = bug_line is not None and line <= bug_line < line + _block_length(lines, line - 1)
    if unit[:1].isupper() and not inside:
        rec.call("It is a method. Let me read the whole class.", "read_file", path=path)
    else:
        _read_range(rec, path, line, "Found it. Let me read it.")


def _describe(gold: dict[str, Any]) -> str:
    if gold["kind"] == "implement":
        return "The function is only a stub. I will implement it from its docstring."
    if gold["kind"] == "missing_return":
        return "The function never returns its result."
    return "This line disagrees with the docstring."


def _bad_old_string(rec: Recorder, gold: dict[str, Any], old: str, rng: random.Random) -> str:
    """A plausible wrong old_string: copied with read_file's line-number prefix, or `old`
    retyped with the spacing wrong."""
    first = gold["old"].splitlines()[0]
    squeezed = old.replace(", ", ",").replace(" + ", "+").replace(" - ", "-").replace(" * ", "*")
    if rng.random() < 0.5 or squeezed == old:
        return f"{_first_line(rec, gold):>6}\t{first}"
    return squeezed


def _first_line(rec: Recorder, gold: dict[str, Any]) -> int:
    """1-based line where the gold edit's old text starts, in the file as it is now."""
    text = (rec.root / gold["path"]).read_text(encoding="utf-8")
    return text[: text.index(gold["old"])].count("\n") + 1


def _read_traceback_line(rec: Recorder, gold: dict[str, Any], tests: str, n: int) -> None:
    """When the test run's traceback ends in this gold edit's file, on its line, read that one
    line (`offset=N, limit=1`, N copied from `line N` in the traceback) right before editing: the
    edit then copies the line from the last, one-line output -- not from a module where
    `return` or `if` starts a dozen lines and a small model's copy drifts into the wrong one.
    `n` is the line the edit touches, in the file as it is now."""
    if len(gold["old"].splitlines()) == 1 and f'File "{gold["path"]}", line {n},' in tests:
        rec.call("Let me read the line the traceback ends on.", "read_file", path=gold["path"],
                 offset=n, limit=1)


def _diagnose(rec: Recorder, gold: dict[str, Any]) -> None:
    """Ask for the file's diagnostics right before reading the line to fix: an unused or an
    undefined name in the report is usually the name the fix needs."""
    if gold["path"].endswith(".py"):
        rec.call("Let me check the module for unused or undefined names.", "diagnostics",
                 path=gold["path"])


def _edit(rec: Recorder, gold: dict[str, Any], rng: random.Random) -> None:
    path = gold["path"]
    # the whole line(s), indentation included. The BPE writes `        rail = ...` as an
    # indentation token (7 spaces), then ` rail`; the line was just read on its own
    # (_read_traceback_line), so the most recent indentation token in the context is followed by
    # the line's first word, and an induction head -- which continues from the last occurrence of
    # the current token -- copies the rest. An old_string started at the indentation's last space
    # (`" rail = ..."`) made the model *start* the copy at ` rail` after `"`, a lookup it rarely
    # learned (fewer tasks solved: docs/lab/2026-12-03-measurements-behind-the-code.md).
    old, new = gold["old"], gold["new"]
    if rng.random() < P_BAD_EDIT:
        bad = _bad_old_string(rec, gold, old, rng)
        if (rec.root / path).read_text(encoding="utf-8").count(bad) == 0:
            r = rec.call(_describe(gold), "edit_file", mistake=True, path=path, old_string=bad,
                         new_string=new)
            assert r.is_error, "the deliberately wrong edit matched"
            # read just the line(s) again -- their number was in the output read before --
            # and copy the text after the tab
            n = _first_line(rec, gold)
            count = len(gold["old"].splitlines())
            rec.call(f"The edit did not match. Let me read line {n} again and copy it exactly."
                     if count == 1 else "The edit did not match. Let me read those lines again "
                     "and copy them exactly.", "read_file", path=path, offset=n, limit=count)
            r = rec.call("Now with the exact text.", "edit_file", path=path,
                         old_string=old, new_string=new)
            assert not r.is_error, r.content
            return
    r = rec.call(_describe(gold), "edit_file", path=path, old_string=old, new_string=new)
    assert not r.is_error, r.content


def solve(task: TaskInfo, root: Path, rng: random.Random, compact: bool = True,
          diagnose: bool = True, test_lines: int = 0) -> list[dict[str, Any]]:
    """Record one oracle trajectory in the working copy `root`; returns the messages.
    `diagnose`: check the file's diagnostics before each edit. `test_lines`: show only the
    first lines of each test run (test_command)."""
    rec = Recorder(task, root, compact)
    command = test_command(test_lines)
    golds = sorted(task.record["gold"], key=lambda g: (g["path"], g["line"]))
    tests = rec.call("Let me run the tests.", "bash", command=command).content
    paths = PATHS.get(task.tier, PATHS[3])
    mode = rng.choices(list(paths), weights=list(paths.values()))[0]
    # the line each gold edit touches, in the file as it is now (edits shift later lines)
    def bug_line(g: dict[str, Any]) -> int:
        return _first_line(rec, g) + len(g["old"].splitlines()) - 1
    for gold in golds:
        unit = gold.get("unit", gold["function"])
        caller = gold.get("called_from")
        if caller:   # tier 2: read the function the test calls, then follow it to the helper
            _locate(rec, rng, mode, caller["path"], caller["function"])
            line = _search(rec, unit, gold["path"], "It calls a helper. Let me find the helper.")
            _read_range(rec, gold["path"], line, "Found it. Let me read it.")
        else:
            _locate(rec, rng, mode if gold is golds[0] else "search", gold["path"], unit,
                    bug_line(gold))
        if diagnose:
            _diagnose(rec, gold)
        _read_traceback_line(rec, gold, tests, bug_line(gold))
        _edit(rec, gold, rng)
    result = rec.call("Let me run the tests again.", "bash", command=command)
    assert "OK" in result.content, result.content
    what = "implemented the missing function" if golds[0]["kind"] == "implement" else \
        ("fixed two bugs" if len(golds) > 1 else "fixed the bug")
    rec.answer(f"I {what}; the failing tests now pass.")
    return rec.messages


def record_one(task_dir: str | Path, seed: int = 0, compact: bool = True,
               verify: bool = True, diagnose: bool = True, test_lines: int = 0) -> dict[str, Any]:
    """One verified trajectory: {"task", "messages", "tools"}. Call inside python_on_path()."""
    task = load_task(task_dir)
    work = scratch_copy(task)
    try:
        rng = random.Random(f"groundup-oracle:{seed}:{task.id}")
        messages = solve(task, work, rng, compact, diagnose, test_lines)
        if verify and not check(task, work).solved:
            raise AssertionError(f"oracle trajectory for {task.id} does not solve it")
        tools = Toolbox(work, tools=CORE_TOOLS if compact else None).schemas()
        return {"task": task.id, "messages": messages, "tools": tools}
    finally:
        remove_scratch(work)


def record(task_dirs: Iterable[str | Path], out_path: str | Path, seed: int = 0,
           compact: bool = True, workers: int = 1, verify: bool = True,
           progress: Callable[[int], None] | None = None, strict: bool = True,
           diagnose: bool = True, test_lines: int = 0) -> int:
    """Solve each task with the oracle and append one JSONL line per task to out_path;
    returns how many were written.

    With verify, each final state is also checked by running all of the task's tests (one
    more subprocess per task); the oracle's own last test run is checked either way. A task
    the oracle fails on raises with strict, and is skipped with a warning otherwise (a
    generated data set should not die on one odd task; the tests keep strict on).
    Threads suffice for `workers`: the time goes to test subprocesses, not Python.
    """
    def one(d: str | Path) -> dict[str, Any] | None:
        try:
            return record_one(d, seed, compact, verify, diagnose, test_lines)
        except (AssertionError, ValueError, OSError) as e:
            if strict:
                raise
            print(f"warning: oracle skipped {Path(d).name}: {e}", file=sys.stderr)
            return None

    dirs = list(task_dirs)
    n = 0
    with python_on_path(), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for row in pool.map(one, dirs):
            if row is not None:
                append_jsonl(out_path, row)
                n += 1
            if progress is not None:
                progress(n)
    return n


def make_dataset(out_path: str | Path, n: int, tiers: Sequence[int] = (1, 2, 3),
                 weights: Sequence[float] | None = None, seed: int = 0, workers: int = 1,
                 verify: bool = False, progress: Callable[[int], None] | None = None) -> int:
    """Generate n fresh training tasks (tier drawn by `weights`) and record one oracle
    trajectory for each into out_path: the SFT data in one call. Task i uses seed + i."""
    rng = random.Random(f"groundup-dataset:{seed}")
    chosen = rng.choices(list(tiers), weights=weights, k=n)
    with tempfile.TemporaryDirectory(prefix="groundup-sft-tasks-") as tmp:
        dirs = [generate_task(seed + i, tier, "train").write(tmp) for i, tier in enumerate(chosen)]
        return record(dirs, out_path, seed=seed, workers=workers, verify=verify,
                      progress=progress, strict=False)
