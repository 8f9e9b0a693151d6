"""The checker and `groundup eval agent`, end to end with scripted (replay:) models."""

from __future__ import annotations

import json

import pytest

from groundup.cli import main
from groundup.errors import UserError
from groundup.io import read_jsonl
from groundup.tasks.check import check, fresh_copy, load_task, load_tasks, run_tests
from groundup.tasks.evaluate import evaluate
from groundup.tasks.generate import generate_task


def _foreign_task(root):
    """A task groundup did not generate: only the required fields, a hand-written repo."""
    repo = root / "mine" / "repo"
    (repo / "calc").mkdir(parents=True)
    (repo / "calc" / "__init__.py").write_text("")
    (repo / "calc" / "ops.py").write_text("def add(a, b):\n    return a - b\n\n\n"
                                          "def neg(a):\n    return -a\n")
    (repo / "test_ops.py").write_text(
        "import unittest\nfrom calc.ops import add, neg\n\n\n"
        "class T(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n"
        "    def test_neg(self):\n        self.assertEqual(neg(2), -2)\n\n"
        "    def test_boom(self):\n        raise RuntimeError('x')\n")
    (root / "mine" / "task.json").write_text(json.dumps({
        "id": "mine-1", "problem_statement": "add is wrong",
        "fail_to_pass": ["test_ops.T.test_add"], "pass_to_pass": ["test_ops.T.test_neg"]}))
    return root / "mine"


def test_run_tests_reports_each_outcome(tmp_path):
    task = load_task(_foreign_task(tmp_path))
    assert task.tier == 0 and task.bug_kind == "unknown"
    got = run_tests(task.repo, ["test_ops.T.test_add", "test_ops.T.test_neg",
                                "test_ops.T.test_boom", "test_ops.T.test_nothing", "nope.x"])
    assert got == {"test_ops.T.test_add": "fail", "test_ops.T.test_neg": "pass",
                   "test_ops.T.test_boom": "error", "test_ops.T.test_nothing": "error",
                   "nope.x": "error"}
    assert not list(task.repo.rglob("__pycache__"))    # -B: the task stays clean


def test_editing_the_tests_never_counts_as_a_fix(tmp_path):
    task = load_task(_foreign_task(tmp_path))
    work = fresh_copy(task, tmp_path / "work")
    (work / "test_ops.py").write_text("import unittest\n\n\nclass T(unittest.TestCase):\n"
                                      "    def test_add(self):\n        pass\n\n"
                                      "    def test_neg(self):\n        pass\n")
    (work / "test_extra.py").write_text("raise SystemExit\n")
    assert not check(task, work).solved
    assert not (work / "test_extra.py").exists()
    (work / "calc" / "ops.py").write_text("def add(a, b):\n    return a + b\n\n\n"
                                          "def neg(a):\n    return -a\n")
    assert check(task, work).solved


def test_a_fix_that_hangs_is_a_timeout_not_a_hang(tmp_path):
    task = load_task(_foreign_task(tmp_path))
    work = fresh_copy(task, tmp_path / "work")
    (work / "calc" / "ops.py").write_text("def add(a, b):\n    while True:\n        pass\n\n\n"
                                          "def neg(a):\n    return -a\n")
    result = check(task, work, timeout=3)
    assert not result.solved and result.fail_to_pass["test_ops.T.test_add"] == "timeout"


def test_load_tasks_explains_what_is_wrong(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_tasks(tmp_path / "missing")
    with pytest.raises(UserError, match="no tasks"):
        load_tasks(tmp_path)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "task.json").write_text("{}")
    with pytest.raises(UserError, match="not a task"):
        load_tasks(tmp_path)


def _script(path, turns):
    path.write_text("".join(json.dumps(t) + "\n" for t in turns))
    return path


def test_eval_end_to_end_one_solved_one_not(tmp_path):
    a, b = generate_task(0, 1, "heldout"), generate_task(1, 2, "heldout")
    for t in (a, b):
        t.write(tmp_path / "tasks")
    g = a.gold[0]
    b_test = "tests/" + b.fail_to_pass[0].split(".")[1] + ".py"
    script = _script(tmp_path / "s.jsonl", [
        # task a (first by id): run the test, read, fix, answer
        {"content": "run", "tool_calls": [{"name": "bash", "arguments": {
            "command": "python -m unittest -q " + a.fail_to_pass[0]}}]},
        {"content": "read", "tool_calls": [{"name": "read_file", "arguments": {"path": g["path"]}}]},
        {"content": "fix", "tool_calls": [{"name": "edit_file", "arguments": {
            "path": g["path"], "old_string": g["old"], "new_string": g["new"]}}]},
        {"content": "fixed it"},
        # task b: empties the failing test file instead of fixing the code
        {"content": "cheat", "tool_calls": [{"name": "write_file", "arguments": {
            "path": b_test, "content": "import unittest\n"}}]},
        {"content": "all tests pass now"},
    ])
    out = tmp_path / "out"
    code = main(["eval", "agent", "--model", f"replay:{script}", "--tasks",
                 str(tmp_path / "tasks"), "--out", str(out)])
    assert code == 0
    rows = {r["id"]: r for r in read_jsonl(out / "results.jsonl")}
    assert rows[a.id]["solved"] is True and rows[a.id]["steps"] == 4
    assert rows[b.id]["solved"] is False and rows[b.id]["steps"] == 2
    # how far each run got: a read that returned the file, an edit that applied
    assert (rows[a.id]["read_ok"], rows[a.id]["edit_ok"]) == (True, True)
    assert (rows[b.id]["read_ok"], rows[b.id]["edit_ok"]) == (False, True)
    for r in rows.values():
        assert {"tier", "bug_kind", "tokens", "time_s", "transcript", "stop_reason"} <= set(r)
        transcript = [json.loads(x) for x in (out / r["transcript"]).read_text().splitlines()]
        assert transcript[0]["role"] == "system" and transcript[-1]["role"] == "assistant"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["solved"] == 1 and summary["total"] == 2
    assert summary["read_ok"] == 1 and summary["edit_ok"] == 2
    assert summary["by_tier"]["tier1"] == {**summary["by_tier"]["tier1"], "solved": 1, "total": 1}
    assert summary["by_tier"]["tier2"]["solved"] == 0
    assert summary["by_kind"][a.bug_kind]["solved"] == 1

    # a rerun resumes: nothing is run again (this script would solve nothing)
    empty = _script(tmp_path / "empty.jsonl", [{"content": "no idea"}])
    again = evaluate(f"replay:{empty}", tmp_path / "tasks", out, progress=False)
    assert again["solved"] == 1 and len(list(read_jsonl(out / "results.jsonl"))) == 2


def test_cli_generate_validate_and_eval_generate(tmp_path, capsys):
    assert main(["tasks", "generate", "--n", "2", "--tier", "1,3", "--split", "heldout",
                 "--out", str(tmp_path / "t")]) == 0
    assert len(load_tasks(tmp_path / "t")) == 4
    assert main(["tasks", "validate", str(tmp_path / "t")]) == 0
    assert "4/4 tasks valid" in capsys.readouterr().out
    assert main(["tasks", "oracle", "--tasks", str(tmp_path / "t"), "--out",
                 str(tmp_path / "o.jsonl"), "--no-verify"]) == 0
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 4
    script = _script(tmp_path / "s.jsonl", [{"content": "no idea"}])
    assert main(["eval", "agent", "--model", f"replay:{script}", "--generate", "1",
                 "--tier", "2", "--out", str(tmp_path / "e")]) == 0
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["total"] == 1 and summary["solved"] == 0 and summary["max_repeats"] is None
    assert main(["tasks", "generate", "--n", "1", "--tier", "4", "--out", str(tmp_path)]) == 2
    assert main(["eval", "agent", "--model", f"replay:{script}", "--tasks", str(tmp_path / "t"),
                 "--max-repeats", "1"]) == 2        # a call made once is no repeat


def test_parallel_workers_each_get_a_model(tmp_path):
    for s in range(4):
        generate_task(s, 1, "heldout").write(tmp_path / "tasks")
    script = _script(tmp_path / "s.jsonl", [
        {"content": "look", "tool_calls": [{"name": "list_dir", "arguments": {"path": "."}}]},
        {"content": "cannot fix it"}])
    summary = evaluate(f"replay:{script}", tmp_path / "tasks", tmp_path / "out", workers=2,
                       progress=False)
    rows = list(read_jsonl(tmp_path / "out" / "results.jsonl"))
    assert summary["total"] == 4 and summary["solved"] == 0 and len(rows) == 4
    # at most two models, each replaying its script once: one or two tasks saw the two-turn
    # script, the others an exhausted one (one empty turn). A model per task would give 2s.
    assert sorted(r["steps"] for r in rows) in ([1, 1, 1, 2], [1, 1, 2, 2])


def test_a_batched_local_model_is_loaded_once_and_shared_by_the_workers(tmp_path):
    """`--batch N`: one local model with a continuous-batching engine serves every worker (the
    fast way on a GPU); its scheduler thread is stopped when the evaluation ends."""
    import threading

    import torch

    from groundup.model import ModelConfig, Transformer, save_model
    from groundup.tokenizer import train_tokenizer
    from groundup.tokenizer.special import SPECIAL_TOKENS

    tok = train_tokenizer(["def f(x): return x + 1\nrun the tests\n" * 30],
                          vocab_size=256 + len(SPECIAL_TOKENS) + 30, progress=False)
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    save_model(Transformer(ModelConfig.from_depth(2, vocab_size=tok.vocab_size, max_seq_len=1024)), model_dir)
    tok.save(model_dir)
    for s in range(3):
        generate_task(s, 1, "heldout").write(tmp_path / "tasks")
    summary = evaluate(f"local:{model_dir}", tmp_path / "tasks", tmp_path / "out", workers=3,
                       max_steps=2, progress=False, model_options={"batch": 3, "max_tokens": 8})
    assert summary["total"] == 3 and len(list(read_jsonl(tmp_path / "out" / "results.jsonl"))) == 3
    assert not [t for t in threading.enumerate() if t.name == "groundup-scheduler"]
    # the option is refused for models that cannot batch, before anything runs
    assert main(["eval", "agent", "--model", "replay:x", "--batch", "3", "--tasks",
                 str(tmp_path / "tasks"), "--out", str(tmp_path / "o2")]) == 2
    assert not (tmp_path / "o2").exists()
