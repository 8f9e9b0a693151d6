"""Tasks as a user would bring them: other repository layouts, other ways of asking.

    vary(task, split) -> the same bug in a repository laid out differently, asked in other words

Every generated task has one shape: a package, `tests/test_<module>.py`, a sentence naming the
failing test ids and the package. A model trained only on that shape follows its script when
the repository is flat or the request is a sentence. So a task can be *varied*: the same code
and bug (the same seed gives the same task), re-laid out and re-asked, with the layout and the
wording drawn from pools that differ between the splits -- the held-out variants use layouts
and phrasings that no training task ever has, which is what the speedrun's held-out variant
set measures.

Layouts (`{m}` a module, `{p}` the package):
    package     {p}/{m}.py        tests/test_{m}.py      the generator's own
    flat        {m}.py            test_{m}.py            training variants
    beside      {p}/{m}.py        {p}/test_{m}.py        training variants
    src         src/{p}/{m}.py    tests/test_{m}.py      held out (tests/__init__.py puts src/ on the path)
    flat_tests  {m}.py            tests/test_{m}.py      held out

Design choice: a variant is a rewrite of a finished task (paths, imports, test ids, gold edits,
statement), not another generator path: the code and the bug stay byte for byte the same, so a
variant's result compares with its standard twin's, and the generator stays one thing.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

from groundup.tasks.generate import Task

LAYOUTS = {   # (code path, test path, package files kept)
    "package": ("{p}/{m}.py", "tests/test_{m}.py"),
    "flat": ("{m}.py", "test_{m}.py"),
    "beside": ("{p}/{m}.py", "{p}/test_{m}.py"),
    "src": ("src/{p}/{m}.py", "tests/test_{m}.py"),
    "flat_tests": ("{m}.py", "tests/test_{m}.py"),
}
SPLIT_LAYOUTS = {"train": ("package", "flat", "beside"), "heldout": ("src", "flat_tests")}

# {tests}: failing test ids, {fail}: fail(s), {where}: where the code is, {function}: the function
# with the bug (or the wrapper that calls it)
SPLIT_PHRASINGS = {
    "train": (
        "{tests} {fail}. Find the bug {where} and fix it so that all the tests pass.",
        "Please fix the bug {where}: {tests} {fail}.",
        "The test suite fails. Find the bug {where} and fix it.",
        "{function} is broken: its tests fail. Fix the code {where}, not the tests.",
    ),
    "heldout": (
        "Since the last change the tests do not pass any more. Could you take a look {where}?",
        "When I call {function} I get an error instead of the result its docstring promises. "
        "Please fix it.",
        "Some of the tests fail ({tests}). Make them pass without changing the tests.",
    ),
}
_SRC_PATH = ("import os\nimport sys\n\n# the package lives in src/: make it importable for the tests\n"
             "sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, 'src'))\n")


def _package(task: Task) -> str:
    return next(p.split("/")[0] for p in task.files if p.endswith("/__init__.py") and not p.startswith("tests/"))


def relayout(task: Task, layout: str) -> Task:
    """The task with its files laid out as `layout` (LAYOUTS), imports and test ids to match."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; the layouts are {', '.join(LAYOUTS)}")
    pkg = _package(task)
    code_fmt, test_fmt = LAYOUTS[layout]
    dotted = (code_fmt[:-3].replace("/", ".")).replace("src.", "", 1)        # how code is imported
    path_map: dict[str, str] = {}
    for path in task.files:
        m = re.fullmatch(rf"{re.escape(pkg)}/(\w+)\.py", path)
        if m and m.group(1) != "__init__":
            path_map[path] = code_fmt.format(p=pkg, m=m.group(1))
        m = re.fullmatch(r"tests/test_(\w+)\.py", path)
        if m:
            path_map[path] = test_fmt.format(p=pkg, m=m.group(1))
    test_ids = {f"tests.test_{mod}.": test_fmt.format(p=pkg, m=mod)[:-3].replace("/", ".") + "."
                for mod in (re.fullmatch(r"tests/test_(\w+)\.py", p).group(1)
                            for p in task.files if re.fullmatch(r"tests/test_\w+\.py", p))}

    def imports(text: str) -> str:     # `from pkg.mod import x` -> how this layout imports mod
        return re.sub(rf"\bfrom {re.escape(pkg)}\.(\w+) import",
                      lambda mm: f"from {dotted.format(p=pkg, m=mm.group(1))} import", text)

    def ids(text: str) -> str:
        for old, new in test_ids.items():
            text = text.replace(old, new)
        return text

    files: dict[str, str] = {}
    in_package = "{p}/" in code_fmt
    for path, text in task.files.items():
        if path == f"{pkg}/__init__.py":
            if in_package:
                files[code_fmt.format(p=pkg, m="__init__")] = text
        elif path == "tests/__init__.py":
            if test_fmt.startswith("tests/"):
                files[path] = _SRC_PATH if layout == "src" else text
        else:
            files[path_map.get(path, path)] = imports(text)
    gold = []
    for g in task.gold:
        g = {**g, "path": path_map[g["path"]]}
        if "called_from" in g:
            g["called_from"] = {**g["called_from"], "path": path_map[g["called_from"]["path"]]}
        gold.append(g)
    where = '"' + code_fmt.format(p=pkg, m="x").rsplit("/", 1)[0] + '/"' if in_package else '"./"'
    statement = ids(task.problem_statement).replace(f'"{pkg}/"', where)
    return replace(task, id=f"{task.id}-{layout}", files=files, gold=gold, problem_statement=statement,
                   fail_to_pass=[ids(t) for t in task.fail_to_pass],
                   pass_to_pass=[ids(t) for t in task.pass_to_pass])


def rephrase(task: Task, phrasing: str) -> Task:
    """The task asked with `phrasing` (a SPLIT_PHRASINGS template)."""
    shown = ", ".join(task.fail_to_pass[:3]) + (" and others" if len(task.fail_to_pass) > 3 else "")
    code = task.gold[0].get("called_from", task.gold[0])["path"]
    where = f'in "{code.rsplit("/", 1)[0]}/"' if "/" in code else "in this repository"
    function = task.gold[0].get("called_from", task.gold[0])["function"]
    text = phrasing.format(tests=shown, fail="fails" if len(task.fail_to_pass) == 1 else "fail",
                           where=where, function=function)
    return replace(task, problem_statement=text)


def vary(task: Task, split: str | None = None) -> Task:
    """The same task in a layout and wording drawn from `split`'s pools (by default the task's
    own split), deterministic from the task's id."""
    split = split or task.split
    rng = random.Random(f"groundup-variant:{task.id}")
    out = relayout(task, rng.choice(SPLIT_LAYOUTS[split]))
    if task.bug_kind == "implement":
        return out                     # its statement names the function to write: keep it
    return rephrase(out, rng.choice(SPLIT_PHRASINGS[split]))
