"""Generate bug-fix tasks: a small Python repository, a bug from the catalogue, its tests.

Design choices:
- Deterministic from (split, tier, seed): the random stream is seeded with all three, so a
  held-out seed can never reproduce a training task even when the integers coincide, and the
  held-out split draws its identifiers from nouns training never uses (groundup/tasks/vocab.py).
- Validation runs in-process before anything is written: the correct code computes each test's
  expected value, the buggy code must make at least one test fail (those become `fail_to_pass`)
  and the rest are `pass_to_pass`. A line-event budget (`sys.settrace`) stops a mutation that
  would loop forever. No subprocess, so thousands of tasks take seconds; the on-disk check with
  real `python -m unittest` lives in groundup/tasks/check.py and is what the tests use.
- Tiers: 1) the failing test's traceback points at the buggy line: the bug, in the function or
  class the test calls, raises an exception on the very line that holds it (a `TypeError` from
  a wrong variable, an `IndexError` from a wrong index...), so the traceback prints the file,
  the line number and the line -- only the kinds that can do that appear here (most do not:
  a wrong comparison returns a wrong value, and the traceback shows the test's assertion);
  2) the failing test calls a wrapper whose helper, in another module, holds the bug (no test
  names that module), so the agent has to search; 3) two bugs, or a function left as
  `raise NotImplementedError` to implement from its docstring. Tiers 2 and 3 draw from every
  kind.
- The shape on disk is SWE-bench's: `task.json` + `repo/`. `task.json` also carries the gold
  edits (`gold`) that the oracle uses; the agent under evaluation only ever sees `repo/`.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundup.io import atomic_write_json, atomic_write_text
from groundup.tasks import bugs
from groundup.tasks.templates import (CLASSES, FUNCTIONS, WRAPPERS, Case, Unit, instantiate,
                                      wrap)
from groundup.tasks.vocab import camel, nouns_for, plural, pseudo_word

TIERS = (1, 2, 3)
# the kinds whose bug can raise on its own line (what _raising_offers finds in the templates;
# tests/tasks/test_tasks_generate.py checks that the two agree)
TIER1_KINDS = ("arithmetic_operator", "off_by_one", "wrong_attribute", "wrong_index",
               "wrong_variable")


@dataclass
class Module:
    name: str
    units: list[Unit]
    imports: list[str] = field(default_factory=list)
    tested: bool = True


@dataclass
class Task:
    id: str
    tier: int
    split: str
    seed: int
    bug_kind: str
    problem_statement: str
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    files: dict[str, str]                 # the buggy repository: relative path -> text
    gold: list[dict[str, Any]]            # edits that fix it: path, old, new, function, ...
    bug_kinds: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "problem_statement": self.problem_statement,
                "fail_to_pass": self.fail_to_pass, "pass_to_pass": self.pass_to_pass,
                "tier": self.tier, "bug_kind": self.bug_kind, "bug_kinds": self.bug_kinds,
                "split": self.split, "seed": self.seed, "gold": self.gold}

    def write(self, out_dir: str | Path) -> Path:
        task_dir = Path(out_dir) / self.id
        for rel, text in self.files.items():
            atomic_write_text(task_dir / "repo" / rel, text)
        atomic_write_json(task_dir / "task.json", self.record())
        return task_dir


class _Runaway(Exception):
    pass


def _run_guarded(fn, budget: int = 20000):
    """Run fn() with a budget of traced line events: an injected infinite loop raises."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        count += 1
        if count > budget:
            raise _Runaway()
        return tracer

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        return fn()
    finally:
        sys.settrace(old)


def _evaluate(codes: list[str], cases: list[Case], target: int | None = None) -> list[tuple[bool, Any]]:
    """(ok, value) for each case, running the given unit codes in one namespace. The code at
    index `target` is compiled as file "<target>", so `_raised_at` can tell its frames apart."""
    ns: dict[str, Any] = {}
    try:
        _run_guarded(lambda: [exec(compile(c, "<target>" if i == target else "<unit>", "exec"), ns)
                              for i, c in enumerate(codes)])
    except Exception as e:  # an injected bug may break the definitions themselves
        return [(False, e)] * len(cases)
    out = []
    for case in cases:
        local = dict(ns)

        def go(case=case, local=local):
            for line in case.setup:
                exec(line, local)
            return eval(case.expr, local)
        try:
            out.append((True, _run_guarded(go)))
        except BaseException as e:  # noqa: B036 -- _Runaway, RecursionError, anything a bug raises
            if isinstance(e, KeyboardInterrupt):
                raise
            out.append((False, e))
    return out


def _raised_at(error: Any) -> int | None:
    """The 1-based line of the target's code where `error` was raised, when the innermost frame
    of generated code is the target's (None for a wrong value, or a raise elsewhere)."""
    if not isinstance(error, BaseException):
        return None
    tb, line = error.__traceback__, None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in ("<target>", "<unit>"):
            line = tb.tb_lineno if name == "<target>" else None
        tb = tb.tb_next
    return line


P_MADE_UP = 0.7     # share of a training repository's names that are made-up words (vocab.py)


class _Names:
    """Draws distinct names for one repository: held-out nouns for the held-out split; for
    training, made-up words (P_MADE_UP of them) and training nouns."""

    def __init__(self, split: str, rng: random.Random):
        self.pool = list(nouns_for(split))
        rng.shuffle(self.pool)
        self.rng, self.made_up = rng, split == "train"
        self.used: set[str] = set()

    def take(self, n: int) -> list[str]:
        out = []
        while len(out) < n:
            if self.made_up and self.rng.random() < P_MADE_UP:
                w = pseudo_word(self.rng)
            else:
                w = self.pool.pop()
            forms = {w, plural(w)}
            if forms & self.used:
                continue
            self.used |= forms
            out.append(w)
        return out


def _tests_for(mod: Module, pkg: str, expected: dict[int, Any]) -> tuple[str, list[tuple[str, Case]]]:
    """The unittest file for a module, and (test id, case) pairs in file order."""
    cls = f"Test{camel(mod.name)}"
    names = [u.name for u in mod.units]
    lines = ["import unittest", "", f"from {pkg}.{mod.name} import {', '.join(names)}", "", "",
             f"class {cls}(unittest.TestCase):"]
    ids: list[tuple[str, Case]] = []
    seen: dict[str, int] = {}
    for unit in mod.units:
        for case in unit.cases:
            seen[case.label] = seen.get(case.label, 0) + 1
            method = f"test_{case.label}" + ("" if seen[case.label] == 1 else f"_{seen[case.label]}")
            lines += ["", f"    def {method}(self):"]
            lines += [f"        {s}" for s in case.setup]
            lines.append(f"        self.assertEqual({case.expr}, {expected[id(case)]!r})")
            ids.append((f"tests.test_{mod.name}.{cls}.{method}", case))
    lines += ["", "", "if __name__ == '__main__':", "    unittest.main()", ""]
    return "\n".join(lines), ids


def _module_text(pkg: str, mod: Module, codes: dict[int, str]) -> str:
    doc = f'"""{camel(mod.name)} helpers of the {pkg} package."""\n'
    head = doc + ("\n" + "\n".join(mod.imports) + "\n" if mod.imports else "")
    return head + "".join("\n\n" + codes[id(u)] for u in mod.units)


def _pick_mutation(unit: Unit, rng: random.Random, kind: str | None = None) -> list[bugs.Mutation]:
    """Candidate bugs for a unit, ordered kind-first at random so every kind gets its turn
    (the kind asked for, when given, comes first)."""
    by_kind: dict[str, list[bugs.Mutation]] = {}
    for m in bugs.mutations(unit.code):
        by_kind.setdefault(m.kind, []).append(m)
    kinds = sorted(by_kind)
    rng.shuffle(kinds)
    if kind in by_kind:
        kinds.remove(kind)
        kinds.insert(0, kind)
    out = []
    for k in kinds:
        ms = by_kind[k]
        rng.shuffle(ms)
        out += ms[:3]
    return out


_OFFERS: dict[str, set[str]] = {}


def _probe(t) -> Unit:
    """One fixed instance of a template, to ask what its code offers (the same under any names)."""
    return instantiate(t, ["alpha", "beta", "gamma", "delta", "omega"], random.Random(0))


def _offers(t) -> set[str]:
    """The bug kinds a template's code has sites for."""
    if t.key not in _OFFERS:
        _OFFERS[t.key] = {m.kind for m in bugs.mutations(_probe(t).code)}
    return _OFFERS[t.key]


_RAISING: dict[str, set[str]] = {}


def _raising_offers(t) -> set[str]:
    """The bug kinds whose mutation of a template raises on its own line in some failing case
    (tier 1's kinds), tried on one instance of the template."""
    if t.key not in _RAISING:
        unit = _probe(t)
        expected = _evaluate([unit.code], unit.cases)
        found = set()
        for m in bugs.mutations(unit.code):
            if m.new is None or m.kind in found:
                continue
            got = _evaluate([bugs.apply(unit.code, m)], unit.cases, target=0)
            if any(not ok and _raised_at(v) == m.line + 1 and not isinstance(v, _Runaway)
                   for (ok, v), (_, e) in zip(got, expected)):
                found.add(m.kind)
        _RAISING[t.key] = found
    return _RAISING[t.key]


def _method_of(code: str, line: int) -> str:
    """Name of the innermost def around `line` in a unit's code."""
    for text in reversed(code.splitlines()[: line + 1]):
        s = text.strip()
        if s.startswith("def "):
            return s[4:].split("(")[0]
    return ""


def _stub(unit: Unit) -> str:
    """The function with its body replaced by `raise NotImplementedError` (docstring kept)."""
    lines = unit.code.splitlines()
    return "\n".join(lines[:2] + ["    raise NotImplementedError"]) + "\n"


# every statement names the package: with the test module's name it gives the module's path
# (tests.test_hinge -> door/hinge.py), so "read first" is a path a model can learn. It is
# written in quotes, "door/", as tool calls write their string arguments ({"path": "door/...):
# the same token, ` "`, then comes before the name in both, so an induction head that has
# seen ` "` followed by `door` can start the copy there
_STATEMENTS = [
    '{tests} {fail}. Find the bug in "{pkg}/" and fix it so that all the tests pass.',
    '{tests} {fail}: the code in "{pkg}/" does not do what its docstring says. Fix '
    'the code, not the tests.',
    'Please fix the bug in "{pkg}/": {tests} {fail}.',
]


def generate_task(seed: int, tier: int = 1, split: str = "train") -> Task:
    """One validated task, deterministic from (split, tier, seed)."""
    if tier not in TIERS:
        raise ValueError(f"tier must be 1, 2 or 3, not {tier}")
    # tier 1 keeps its kind across attempts: kinds that raise on their line only for some
    # inputs (a wrong index) would otherwise be drawn again and again and almost never kept
    kind = random.Random(f"groundup-kind:{split}:{seed}").choice(TIER1_KINDS) if tier == 1 else None
    for attempt in range(200 if tier == 1 else 50):
        rng = random.Random(f"groundup-task:{split}:{tier}:{seed}:{attempt}")
        task = _try_generate(rng, seed, tier, split, kind)
        if task is not None:
            return task
    raise RuntimeError(f"could not generate a task for seed {seed} tier {tier}")


# The odds that shape a repository, by name (each builder below draws them in a fixed order,
# so a seed gives the same task as before they were named)
P_IMPLEMENT = 0.4                    # tier 3: a stub to implement, else two bugs
OTHER_MODULES = {2: [1, 1, 2], 1: [1, 1, 2, 2, 3], 3: [1, 1, 2, 2, 3]}   # drawn uniformly
UNITS_PER_MODULE = [0, 1, 1, 2]      # the other code around the bug, per module
P_ANY_TEMPLATE = 0.85                # an other unit is any template, else a class
HELPERS_BESIDE = [0, 1]              # tier 2: other helpers in the helper's module


@dataclass
class _Draft:
    """A repository being built: its names, its modules, and the units that get the bugs."""
    rng: random.Random
    names: _Names
    pkg: str
    modules: list[Module] = field(default_factory=list)
    targets: list[tuple[Unit, str | None]] = field(default_factory=list)   # (unit, bug kind)
    implement: bool = False

    def unit(self, t) -> Unit:
        return instantiate(t, self.names.take(5), self.rng)

    def other_modules(self, tier: int) -> None:
        """The modules around the bug, each with a few other units (or none yet)."""
        rng = self.rng
        for _ in range(rng.choice(OTHER_MODULES[tier])):
            units = [self.unit(rng.choice(FUNCTIONS + CLASSES) if rng.random() < P_ANY_TEMPLATE
                               else rng.choice(CLASSES))
                     for _ in range(rng.choice(UNITS_PER_MODULE))]
            self.modules.append(Module(self.names.take(1)[0], units))

    def place(self, templates: list, kinds: list[str | None]) -> None:
        """Each target unit into one of the modules, at a random position."""
        for t, k in zip(templates, kinds):
            target = self.unit(t)
            mod = self.rng.choice(self.modules)
            mod.units.insert(self.rng.randrange(len(mod.units) + 1), target)
            self.targets.append((target, k))
        self.modules = [m for m in self.modules if m.units]


def _kinds_and_templates(d: _Draft, pool: list, offers, wanted: list[str | None]) -> list:
    """A template for each wanted kind (None: any), among those that offer it."""
    pool = [t for t in pool if offers(t)]
    return [d.rng.choice([t for t in pool if k is None or k in offers(t)]) for k in wanted]


def _build_tier1(d: _Draft, kind: str | None) -> None:
    """The bug, of a kind that raises on its own line, in a unit a test calls directly."""
    pool = [t for t in FUNCTIONS + CLASSES if _raising_offers(t)]
    kinds = sorted(set().union(*(_raising_offers(t) for t in pool)))
    wanted = [kind] if kind else [d.rng.choice(kinds)]
    templates = _kinds_and_templates(d, pool, _raising_offers, wanted)
    d.other_modules(1)
    d.place(templates, wanted)


def _build_tier2(d: _Draft) -> None:
    """The bug in a helper, in a module no test names, called through a tested wrapper."""
    pool = [t for t in FUNCTIONS if _offers(t)]
    kinds = sorted(set().union(*(_offers(t) for t in pool)))
    wanted = [d.rng.choice(kinds)]
    templates = _kinds_and_templates(d, pool, _offers, wanted)
    d.other_modules(2)
    rng, names = d.rng, d.names
    helper_mod = Module(names.take(1)[0], [], tested=False)
    wrapper_mod = Module(names.take(1)[0], [])
    target = d.unit(templates[0])
    helper_mod.units = [target] + [d.unit(rng.choice(FUNCTIONS)) for _ in range(rng.choice(HELPERS_BESIDE))]
    rng.shuffle(helper_mod.units)
    for helper in helper_mod.units:
        key, var = names.take(2)
        wrapper_mod.units.append(wrap(rng.choice(WRAPPERS), helper, key, var, rng))
    wrapper_mod.imports = [f"from {d.pkg}.{helper_mod.name} import "
                           + ", ".join(u.name for u in helper_mod.units)]
    d.modules = [wrapper_mod, helper_mod] + [m for m in d.modules[:1] if m.units]
    d.targets = [(target, wanted[0])]


def _build_tier3(d: _Draft) -> None:
    """Two bugs (in two units, maybe two modules), or one function left to implement."""
    d.implement = d.rng.random() < P_IMPLEMENT
    pool = FUNCTIONS if d.implement else FUNCTIONS + CLASSES
    pool = [t for t in pool if _offers(t)]
    kinds = sorted(set().union(*(_offers(t) for t in pool)))
    wanted: list[str | None] = [None] if d.implement else [d.rng.choice(kinds) for _ in range(2)]
    templates = _kinds_and_templates(d, pool, _offers, wanted)
    d.other_modules(3)
    d.place(templates, wanted)


def _try_generate(rng: random.Random, seed: int, tier: int, split: str,
                  kind: str | None = None) -> Task | None:
    names = _Names(split, rng)
    d = _Draft(rng, names, names.take(1)[0])
    # the bug kinds first, uniformly, then templates that have a site for them: drawing a
    # unit first would let kinds with sites everywhere (wrong_variable) crowd out rare ones
    if tier == 1:
        _build_tier1(d, kind)
    elif tier == 2:
        _build_tier2(d)
    else:
        _build_tier3(d)
    pkg, modules, targets, implement = d.pkg, d.modules, d.targets, d.implement

    all_cases = [c for m in modules for u in m.units for c in u.cases]
    correct_codes = {id(u): u.code for m in modules for u in m.units}
    expected_run = _evaluate(list(correct_codes.values()), all_cases)
    if not all(ok for ok, _ in expected_run):
        return None  # a template with an unlucky draw (never expected; skip rather than ship)
    expected = {id(c): v for c, (_, v) in zip(all_cases, expected_run)}

    # inject the bugs, one target at a time, each validated to break at least one test
    codes = dict(correct_codes)
    applied: list[tuple[Unit, bugs.Mutation | None]] = []
    for unit, kind in targets:
        if implement:
            codes[id(unit)] = _stub(unit)
            applied.append((unit, None))
            continue
        for m in _pick_mutation(unit, rng, kind):
            if tier == 1 and m.kind != kind:
                continue  # tier 1 draws its kinds evenly: another attempt rather than another kind
            trial = dict(codes)
            trial[id(unit)] = bugs.apply(unit.code, m)
            own = _evaluate(list(trial.values()), all_cases, target=list(trial).index(id(unit)))
            if any(not ok and isinstance(v, (_Runaway, RecursionError, MemoryError)) for ok, v in own):
                # e.g. `items.append(x)` inside `for x in items`: the real test would loop and
                # eat memory until its timeout -- a task about waiting, not about reading code
                continue
            own_fail = [(c, v) for c, (ok, v) in zip(all_cases, own)
                        if c.label in _labels(unit, modules) and (not ok or v != expected[id(c)])]
            if tier == 1 and not any(_raised_at(v) == m.line + 1 for _, v in own_fail):
                continue  # tier 1: a failing test's traceback must end on the buggy line
            if own_fail:
                codes = trial
                applied.append((unit, m))
                break
        else:
            return None

    results = _evaluate(list(codes.values()), all_cases)
    failing = {id(c) for c, (ok, v) in zip(all_cases, results) if not ok or v != expected[id(c)]}
    if not failing:
        return None

    files: dict[str, str] = {f"{pkg}/__init__.py": f'"""The {pkg} package."""\n',
                             "tests/__init__.py": ""}
    fail_to_pass, pass_to_pass = [], []
    for mod in modules:
        files[f"{pkg}/{mod.name}.py"] = _module_text(pkg, mod, codes)
        if mod.tested:
            text, ids = _tests_for(mod, pkg, expected)
            files[f"tests/test_{mod.name}.py"] = text
            for tid, case in ids:
                (fail_to_pass if id(case) in failing else pass_to_pass).append(tid)

    gold = [_gold_edit(pkg, modules, codes, unit, m) for unit, m in applied]
    if tier == 2:
        wrapper = next(u for u in modules[0].units if targets[0][0].name in u.calls)
        for g in gold:
            g["called_from"] = {"path": f"{pkg}/{modules[0].name}.py", "function": wrapper.name}
    kinds = ["implement"] if implement else [m.kind for _, m in applied if m is not None]
    bug_kind = kinds[0] if len(kinds) == 1 else "two_bugs"
    shown = ", ".join(fail_to_pass[:3]) + (" and others" if len(fail_to_pass) > 3 else "")
    if implement:
        g = gold[0]
        fail = "fails" if len(fail_to_pass) == 1 else "fail"
        statement = (f"The function {g['function']} in {g['path']} is not implemented yet, so "
                     f"{shown} {fail}. Implement it as its docstring describes.")
    else:
        fail = "fails" if len(fail_to_pass) == 1 else "fail"
        statement = rng.choice(_STATEMENTS).format(tests=shown, pkg=pkg, fail=fail)
    task_id = f"{split}-t{tier}-{seed:06d}"
    return Task(task_id, tier, split, seed, bug_kind, statement, fail_to_pass, pass_to_pass,
                files, gold, kinds)


def _labels(unit: Unit, modules: list[Module]) -> set[str]:
    """Test labels that exercise a unit: its own, or (tier 2) its wrappers'."""
    labels = {c.label for c in unit.cases}
    for m in modules:
        for u in m.units:
            if unit.name in u.calls:
                labels |= {c.label for c in u.cases}
    return labels


def _gold_edit(pkg: str, modules: list[Module], codes: dict[int, str], unit: Unit,
               m: bugs.Mutation | None) -> dict[str, Any]:
    mod = next(mm for mm in modules if unit in mm.units)
    path = f"{pkg}/{mod.name}.py"
    text = _module_text(pkg, mod, codes)
    lines = text.splitlines()
    code_lines = codes[id(unit)].splitlines()
    start = lines.index(code_lines[0])  # the unit's def/class line (names are unique)
    if m is None:  # implement: replace the stub line by the body
        body = "\n".join(unit.code.splitlines()[2:])
        return {"path": path, "old": "    raise NotImplementedError", "new": body,
                "line": start + 3, "function": unit.name, "unit": unit.name,
                "unit_line": start + 1, "kind": "implement"}
    if m.new is None:  # missing_return: re-insert after the line above it
        anchor_idx = start + m.line - 1
        old, new = lines[anchor_idx], lines[anchor_idx] + "\n" + m.old
    else:
        anchor_idx = start + m.line
        old, new = m.new, m.old
    # widen the old text upwards until it matches exactly once in the file
    lo = anchor_idx
    while text.count(old) != 1 and lo > 0:
        lo -= 1
        old, new = lines[lo] + "\n" + old, lines[lo] + "\n" + new
    return {"path": path, "old": old, "new": new, "line": anchor_idx + 1,
            "function": _method_of(codes[id(unit)], m.line if m.new is not None else m.line - 1),
            "unit": unit.name, "unit_line": start + 1, "kind": m.kind}


def generate(n: int, tier: int, split: str, seed: int = 0) -> list[Task]:
    return [generate_task(seed + i, tier, split) for i in range(n)]


def write_tasks(tasks: list[Task], out_dir: str | Path) -> list[Path]:
    return [t.write(out_dir) for t in tasks]
