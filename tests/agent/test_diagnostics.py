"""Static diagnostics on real files: each kind, the tool and the edit results that carry them,
agreement with ruff on the standard library, and clean generated code."""

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from agent_testlib import call, make_repo, run_cli, script, turn
from groundup.agent.diagnostics import check, report
from groundup.agent.tools import Toolbox
from groundup.chat.types import ToolCall

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def ex(tb: Toolbox, name: str, **args):
    return tb.execute(ToolCall(name, args))


def kinds(source: str) -> list[tuple[int, str, str]]:
    return [(d.line, d.code, d.message) for d in check(source)]


def test_each_kind_on_a_real_file():
    src = '''import os


class Shelf:
    def __init__(self, size):
        self.size = size
        self.books = []
        self.label = "shelf"

    def add(self, book, note):
        if len(self.books) >= self.size:
            return False
        self.books.append(bok)
        return True


def total(prices, tax):
    result = 0
    unused = len(prices)
    for price in prices:
        result = result + 1
    return result
'''
    assert kinds(src) == [
        (8, "unused-attribute", "attribute self.label is set but never read"),
        (10, "unused-argument", "argument book of add is never used"),
        (10, "unused-argument", "argument note of add is never used"),
        (13, "undefined-name", "name bok is not defined"),
        (17, "unused-argument", "argument tax of total is never used"),
        (19, "unused-variable", "local variable unused is assigned but never used"),
        (20, "unused-loop-variable", "loop variable price is never used"),
    ]
    assert [d[:2] for d in kinds("def f(:\n    pass\n")] == [(1, "syntax-error")]


def test_what_is_never_reported():
    src = '''from typing import overload
import abc


def callback(event, *args, **kwargs):
    """A stub: its signature is the protocol's."""
    raise NotImplementedError


def pairs(items):
    _ignored = 1
    first, second = items          # unpacking: only one may be needed
    for _i in range(3):
        pass
    return [x for x in second]


def closure():
    count = 0
    def bump():
        nonlocal count
        count += 1
    return bump


class Base(abc.ABC):
    __slots__ = ("kept",)

    def __init__(self):
        self.kept = 1              # named in __slots__: read by name

    @abc.abstractmethod
    def run(self, job):
        ...

    def __exit__(self, kind, value, tb):
        return False

    @classmethod
    def make(cls):
        return cls.__name__ + __name__ + __file__


def probe():
    try:
        return maybe_defined
    except NameError:
        return None


def late():
    return defined_below


defined_below = 1
'''
    assert kinds(src) == []
    assert kinds("from os import *\nprint(getcwd())\n") == []       # a star import: names unknown


def test_scopes_follow_python():
    src = '''class A:
    size = 3

    def get(self):
        return size                # class names are not visible in methods


def outer(n):
    def inner():
        return n                   # an enclosing function's name is
    return inner, [n * k for k in range(n)], k
'''
    assert [(line, code) for line, code, _ in kinds(src)] == \
        [(5, "undefined-name"), (11, "undefined-name")]


def test_the_tool_and_the_edit_results(tmp_path):
    repo = make_repo(tmp_path / "repo", {
        "pkg/calc.py": "def total(prices):\n    result = 0\n    for price in prices:\n"
                       "        result = result + prices\n    return result\n",
        "notes.txt": "hello\n"})
    tb = Toolbox(repo)
    r = ex(tb, "diagnostics", path="pkg/calc.py")
    assert not r.is_error
    assert r.content == "pkg/calc.py:3: loop variable price is never used [unused-loop-variable]"
    assert ex(tb, "diagnostics").content == r.content                      # the whole workspace
    assert ex(tb, "diagnostics", path="notes.txt").is_error
    ex(tb, "read_file", path="pkg/calc.py")
    r = ex(tb, "edit_file", path="pkg/calc.py", old_string="result + prices",
           new_string="result + price")
    assert r.content.endswith("\ndiagnostics: no new problems; 1 fixed")
    assert "diagnostics: no new problems; 1 fixed" in r.display
    r = ex(tb, "edit_file", path="pkg/calc.py", old_string="    return result",
           new_string="    return totl")
    assert r.content.splitlines()[-2:] == [
        "diagnostics: 1 new", "pkg/calc.py:5: name totl is not defined [undefined-name]"]
    ex(tb, "read_file", path="notes.txt")
    r = ex(tb, "edit_file", path="notes.txt", old_string="hello", new_string="bye")
    assert "diagnostics" not in r.content                                 # not a Python file
    r = ex(tb, "write_file", path="pkg/new.py", content="x = undefined_thing\n")
    assert r.content == ("created pkg/new.py (1 lines)\ndiagnostics: 1 new\n"
                         "pkg/new.py:1: name undefined_thing is not defined [undefined-name]")
    assert ex(tb, "diagnostics", path="pkg").content.count("\n") == 1     # both files' problems


def test_diagnostics_reach_stream_json(tmp_path):
    repo = make_repo(tmp_path / "repo", {"calc.py": "def add(a, b):\n    return a + c\n"})
    model = script(tmp_path / "s.jsonl", [
        turn(call("diagnostics", path="calc.py")),
        turn(call("read_file", path="calc.py")),
        turn(call("edit_file", path="calc.py", old_string="a + c", new_string="a + b")),
        {"content": "Fixed add.", "tool_calls": []}])
    p = run_cli(["-p", "fix", "--model", model, "--permission-mode", "yolo",
                 "--output-format", "stream-json"], repo, tmp_path)
    assert p.returncode == 0, p.stderr
    results = [e for e in map(json.loads, p.stdout.splitlines()) if e["type"] == "tool_result"]
    assert "calc.py:2: name c is not defined [undefined-name]" in results[0]["content"]
    assert "argument b of add is never used" in results[0]["content"]
    assert results[2]["content"].endswith("diagnostics: no new problems; 2 fixed")


RUFF_RULES = {"F821": "undefined-name", "F841": "unused-variable", "B007": "unused-loop-variable",
              "ARG001": "unused-argument", "ARG002": "unused-argument",
              "ARG003": "unused-argument", "ARG004": "unused-argument"}


def _name(message: str) -> str:
    return re.search(r"(?:name|variable|argument|attribute) (?:self\.)?(\w+)", message).group(1)


def test_every_shared_diagnostic_is_one_ruff_makes_too_on_the_standard_library():
    """ruff (the Rust linter) as the peer: on 80 standard-library modules, each of our
    undefined-name / unused-variable / unused-loop-variable / unused-argument diagnostics
    must be one ruff reports at the same line for the same name (ours are a subset: we skip
    tuple unpacking, *args, and loop variables read after the loop), and most of ruff's must
    be ours."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install ruff, in the [test] extra)")
    files = sorted(STDLIB.glob("*.py"))[:80]
    p = subprocess.run([ruff, "check", "--no-cache", "--isolated", "--target-version", "py311",
                        "--select", ",".join(RUFF_RULES), "--output-format", "json",
                        *map(str, files)], capture_output=True, text=True)
    theirs = {(d["filename"], d["location"]["row"], RUFF_RULES[d["code"]],
               re.search(r"`([^`]+)`", d["message"]).group(1))
              for d in json.loads(p.stdout) if d["code"] in RUFF_RULES}
    ours = {(str(f), d.line, d.code, _name(d.message))
            for f in files for d in check(f.read_text(encoding="utf-8", errors="replace"))
            if d.code in RUFF_RULES.values()}
    assert ours, "no diagnostics at all on 80 modules: the checker is not running"
    assert ours <= theirs, f"not reported by ruff: {sorted(ours - theirs)[:10]}"
    assert len(ours) >= 0.7 * len(theirs)


def test_unused_attribute_claims_hold_on_the_standard_library():
    """No `.name` read anywhere in the file, checked by a plain text search per claim."""
    for f in sorted(STDLIB.glob("*.py"))[:80]:
        src = f.read_text(encoding="utf-8", errors="replace")
        for d in check(src):
            if d.code == "unused-attribute":
                name = _name(d.message)
                reads = [m for m in re.finditer(rf"\.{name}\b(?!\s*=[^=])", src)]
                assert not reads, f"{f.name}:{d.line}: {name} is read at offset {reads[0].start()}"


def test_generated_code_is_clean_and_a_name_bug_often_leaves_a_trace():
    """Every template's correct code has no diagnostic (so one that appears is the bug's);
    and in a third of tier-1 name bugs a diagnostic names the right name."""
    from groundup.tasks.generate import generate_task
    named = hits = 0
    for seed in range(60):
        task = generate_task(seed, 1, "train")
        for gold in task.gold:
            fixed = task.files[gold["path"]].replace(gold["old"], gold["new"])
            assert check(fixed) == [], report(gold["path"], fixed)
            if task.bug_kind in ("wrong_variable", "wrong_attribute"):
                right = set(re.findall(r"\w+", gold["new"])) - set(re.findall(r"\w+", gold["old"]))
                named += 1
                hits += any(_name(d.message) in right for d in check(task.files[gold["path"]]))
    assert named >= 15 and hits >= named // 5
