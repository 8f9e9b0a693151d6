"""The task generator: real failing tests before the fix, passing after; tiers; splits."""

from __future__ import annotations

import ast
import builtins
import keyword
import unittest

import pytest

from groundup.tasks import bugs
from groundup.tasks.check import apply_gold, check, fresh_copy, load_task, run_tests
from groundup.tasks.generate import TIER1_KINDS, _raising_offers, generate_task
from groundup.tasks.templates import CLASSES, FUNCTIONS, instantiate
from groundup.tasks.vocab import HELDOUT_NOUNS, TRAIN_NOUNS


def _fails_then_passes(task, tmp_path) -> None:
    info = load_task(task.write(tmp_path / "tasks"))
    work = fresh_copy(info, tmp_path / "work" / info.id)
    before = run_tests(work, info.fail_to_pass + info.pass_to_pass)
    assert info.fail_to_pass, info.id
    assert all(before[t] in ("fail", "error") for t in info.fail_to_pass), (info.id, before)
    assert all(before[t] == "pass" for t in info.pass_to_pass), (info.id, before)
    apply_gold(info, work)
    after = check(info, work)
    assert after.solved, (info.id, after)


@pytest.mark.parametrize("split", ["train", "heldout"])
@pytest.mark.parametrize("tier", [1, 2, 3])
def test_every_task_fails_before_and_passes_after_the_fix(tier, split, tmp_path):
    for seed in range(6):
        _fails_then_passes(generate_task(seed, tier, split), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("split", ["train", "heldout"])
@pytest.mark.parametrize("tier", [1, 2, 3])
def test_many_seeds_fail_before_and_pass_after(tier, split, tmp_path):
    for seed in range(100, 250):
        _fails_then_passes(generate_task(seed, tier, split), tmp_path)


def test_deterministic_from_seed_and_split():
    a, b = generate_task(7, 2, "train"), generate_task(7, 2, "train")
    assert a.files == b.files and a.record() == b.record()
    assert generate_task(7, 2, "heldout").files != a.files
    assert generate_task(8, 2, "train").files != a.files


def test_task_json_has_the_swe_bench_fields(tmp_path):
    task_dir = generate_task(3, 1, "train").write(tmp_path)
    info = load_task(task_dir)
    for key in ("id", "problem_statement", "fail_to_pass", "pass_to_pass", "tier", "bug_kind"):
        assert key in info.record
    assert (task_dir / "repo" / "tests" / "__init__.py").is_file()
    # ids are dotted unittest names that the stock runner resolves from repo/
    for tid in info.fail_to_pass + info.pass_to_pass:
        assert tid.startswith("tests.test_") and tid.count(".") == 3


_STD = (set(dir(builtins)) | set(keyword.kwlist) | set(dir(unittest.TestCase))
        | set(dir(list)) | set(dir(dict)) | set(dir(str)) | {"self", "unittest", "tests", "main", "TestCase"})


def _identifiers(task) -> set[str]:
    out = set()
    for rel, text in task.files.items():
        out |= {p for p in rel[:-3].split("/") if p not in ("__init__",)}
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Name):
                out.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                out.add(node.name)
            elif isinstance(node, ast.arg):
                out.add(node.arg)
            elif isinstance(node, ast.Attribute):
                out.add(node.attr)
            elif isinstance(node, ast.ImportFrom) and node.module:
                out |= set(node.module.split("."))
    return out - _STD


def test_heldout_identifiers_never_appear_in_training():
    assert not set(TRAIN_NOUNS) & set(HELDOUT_NOUNS)
    train = set().union(*(_identifiers(generate_task(s, t, "train"))
                          for s in range(40) for t in (1, 2, 3)))
    heldout = set().union(*(_identifiers(generate_task(s, t, "heldout"))
                            for s in range(20) for t in (1, 2, 3)))
    assert len(train) > 300 and len(heldout) > 150
    assert not train & heldout, sorted(train & heldout)[:20]


def test_training_tasks_are_named_mostly_with_made_up_words():
    """Names a model cannot remember (vocab.pseudo_word): most training identifiers contain no
    noun of the list, held-out ones always do; made-up words are deterministic, pronounceable,
    and never a held-out noun or its plural."""
    import random

    from groundup.tasks.vocab import NOUNS, plural, pseudo_word

    def nounless(ids):
        return [i for i in ids if not any(n in i.lower() for n in NOUNS) and "_" not in i]
    train = set().union(*(_identifiers(generate_task(s, 1, "train")) for s in range(10)))
    heldout = set().union(*(_identifiers(generate_task(s, 1, "heldout")) for s in range(10)))
    assert len(nounless(train)) > 20 and not nounless(heldout)
    a, b = random.Random(3), random.Random(3)
    words = [pseudo_word(a) for _ in range(2000)]
    assert words == [pseudo_word(b) for _ in range(2000)] and len(set(words)) > 1500
    forms = {f for w in HELDOUT_NOUNS for f in (w, plural(w))}
    assert not set(words) & forms and all(w.isalpha() and w.islower() for w in words)
    assert generate_task(5, 1, "train").files == generate_task(5, 1, "train").files


def test_tiers_have_their_shape():
    for seed in range(15):
        t1 = generate_task(seed, 1, "train")
        assert len(t1.gold) == 1 and t1.bug_kind in bugs.KINDS
        # tier 1: the buggy module is the one the failing test imports from
        test_file = "tests/" + t1.fail_to_pass[0].split(".")[1] + ".py"
        assert t1.gold[0]["path"][:-3].replace("/", ".") in t1.files[test_file]
        # the statement names the package as a path: the same tokens as in read_file's path
        assert f'"{t1.gold[0]["path"].split("/")[0]}/"' in t1.problem_statement

        t2 = generate_task(seed, 2, "train")
        buggy = t2.gold[0]["path"][:-3].replace("/", ".")
        tests = "".join(v for k, v in t2.files.items() if k.startswith("tests/"))
        assert buggy not in tests           # no test names the module with the bug
        assert t2.gold[0]["called_from"]["path"] != t2.gold[0]["path"]

        t3 = generate_task(seed, 3, "train")
        assert (t3.bug_kind == "two_bugs" and len(t3.gold) == 2) or \
            (t3.bug_kind == "implement" and "raise NotImplementedError" in
             t3.files[t3.gold[0]["path"]])


def test_tier1_tracebacks_end_on_the_buggy_line(tmp_path):
    """The issue's tier 1: the failing test's traceback points at the buggy line. Run for real,
    some failing test's traceback ends in the buggy file, on the gold line, printing it."""
    import subprocess
    import sys

    kinds = set()
    for seed in range(12):
        task = generate_task(seed, 1, "heldout")
        kinds.add(task.bug_kind)
        gold = task.gold[0]
        repo = task.write(tmp_path)
        out = subprocess.run([sys.executable, "-m", "unittest", *task.fail_to_pass],
                             cwd=repo / "repo", capture_output=True, text=True).stderr
        last_frames = [block.split('  File "')[-1] for block in out.split("Traceback")[1:]]
        wanted = f'{gold["path"]}", line {gold["line"]}, in {gold["function"]}\n' \
                 f'    {gold["old"].splitlines()[-1].strip()}\n'
        assert any(f.split('/repo/', 1)[-1].startswith(wanted) for f in last_frames), (task.id, out)
    assert kinds <= set(TIER1_KINDS) and len(kinds) >= 3


def test_tier1_kinds_are_those_the_templates_raise_on_their_line():
    found = set().union(*(_raising_offers(t) for t in FUNCTIONS + CLASSES))
    assert found == set(TIER1_KINDS)


def test_the_catalogue_covers_every_kind():
    kinds = {generate_task(s, t, "train").bug_kind for s in range(80) for t in (1, 2)}
    assert kinds == set(bugs.KINDS)


def test_templates_are_canonical_so_mutations_touch_only_the_bug():
    import random
    for t in FUNCTIONS + CLASSES:
        unit = instantiate(t, ["alpha", "beta", "gamma", "delta", "omega"], random.Random(0))
        for line in unit.code.splitlines():
            s = line.strip()
            if not s or s.startswith(("def ", "class ", '"""')):
                continue
            header = s.endswith(":")
            back = ast.unparse(ast.parse(s + "\n    pass" if header else s))
            assert (back.splitlines()[0] if header else back) == s, (t.key, s)
        for m in bugs.mutations(unit.code):
            mutated = bugs.apply(unit.code, m)
            ast.parse(mutated)
            changed = [a for a, b in zip(unit.code.splitlines(), mutated.splitlines()) if a != b]
            assert m.new is None or changed == [m.old], (t.key, m)


def test_a_seed_still_gives_the_same_task():
    """The held-out set is the same 100 tasks from run to run (docs/08 compares runs on it):
    a change to the generator that moves a random draw would silently swap it. Fingerprints
    of one task per tier and split, recorded when the tier builders were split out."""
    import hashlib
    import json
    want = {(1, "train", 100000): "5404aedd56f6e383", (1, "heldout", 1100000): "5d77bc2e0551cc8c",
            (2, "train", 200000): "05d5a8bc801ecf79", (2, "heldout", 1200000): "afe34d59cc499688",
            (3, "train", 300000): "42003bcf176f3689", (3, "heldout", 1300000): "1a6d5516e0b0fdb5"}
    for (tier, split, seed), fingerprint in want.items():
        t = generate_task(seed, tier, split)
        got = hashlib.sha256(json.dumps([t.record(), t.files], sort_keys=True).encode()).hexdigest()
        assert got[:16] == fingerprint, (tier, split, seed)
