"""Rollouts through the real agent: the ids kept are the model's own, the mask covers exactly
them, rewards come from the real tests, and held-out tasks are never touched."""

import subprocess
import sys

import pytest
import torch

from groundup.chat.format import encode_ordinary, parse_assistant
from groundup.errors import UserError
from groundup.rl.rollout import Job, Turn, load_training_tasks, measure_terms, rollout, stitch
from groundup.tasks.check import load_tasks
from groundup.tasks.evaluate import failed_edit

torch.set_num_threads(1)


def test_stitch_extends_a_row_while_the_prompt_continues_it_and_masks_only_generated_ids():
    t1 = Turn([1, 2, 3], [10, 11, 9])                      # prompt, generated (9: the stop id)
    t2 = Turn([1, 2, 3, 10, 11, 9, 4, 5], [12, 9])         # continues the row: + tool result 4 5
    t3 = Turn([1, 2, 3, 99, 4, 5, 6], [13, 9])             # re-rendered differently: a new row
    rows = stitch([t1, t2, t3])
    assert rows == [([1, 2, 3, 10, 11, 9, 4, 5, 12, 9], [0, 0, 0, 1, 1, 1, 0, 0, 1, 1]),
                    ([1, 2, 3, 99, 4, 5, 6, 13, 9], [0] * 7 + [1, 1])]
    assert stitch([]) == []


def test_failed_edit_and_terms_read_the_transcript():
    def call(i, name, **args):
        return {"role": "assistant", "content": "", "tool_calls": [{"id": f"c{i}", "name": name, "arguments": args}]}

    def result(i, text):
        return {"role": "tool", "tool_call_id": f"c{i}", "content": text}
    refused = [call(1, "edit_file", path="a.py"), result(1, "error: old_string not found")]
    wrong = [call(1, "edit_file", path="a.py"), result(1, "edited a.py"),
             call(2, "bash", command="python -m unittest"), result(2, "FAILED (failures=1)\n[exit code 1]")]
    right = [call(1, "edit_file", path="a.py"), result(1, "edited a.py"),
             call(2, "bash", command="python -m unittest"), result(2, "OK\n[exit code 0]")]
    assert failed_edit(refused) and failed_edit(wrong) and not failed_edit(right)


def test_attempts_keep_the_models_own_ids_and_mask_exactly_them(practice):
    """Real attempts on a training task through one batched engine: the rows' masked ids are
    exactly the ids each turn generated, they parse to the assistant messages of the transcript,
    every tool result sits in the unmasked part, and the reward is the tests' verdict."""
    from groundup.providers.local import LocalModel
    tasks_dir, _, model_dir = practice
    task = load_training_tasks(tasks_dir)[0]
    lm = LocalModel(model_dir, max_tokens=64, batch=4)
    try:
        attempts = rollout(lm, [Job(task, 0, i, 100 + i) for i in range(4)], temperature=1.0, workers=4,
                           max_steps=4, owner="test")
    finally:
        lm.close()
    tok = lm.tokenizer
    tools = None                       # parse without schemas: compare the raw calls
    rewards = []
    for a in attempts:
        assert a.task_id == task.id and a.turns == sum(1 for m in a.messages if m["role"] == "assistant")
        produced = [i for ids, mask in a.rows for i, k in zip(ids, mask) if k]
        assert len(produced) == a.gen_tokens
        # turn by turn: the masked runs of the rows, parsed, are the transcript's assistant turns
        runs, cur = [], []
        for ids, mask in a.rows:
            for i, k in zip(ids + [None], mask + [0]):
                if k:
                    cur.append(i)
                elif cur:
                    runs.append(cur)
                    cur = []
        said = [m for m in a.messages if m["role"] == "assistant"]
        assert len(runs) == len(said)
        for ids, m in zip(runs, said):
            text, calls = parse_assistant(ids, tools, tokenizer=tok)
            assert text == m["content"]
            assert [c.raw for c in calls] == [c.get("raw") for c in m.get("tool_calls", [])]
        unmasked = [[i for i, k in zip(ids, mask) if not k] for ids, mask in a.rows]
        last_turn = max(i for i, m in enumerate(a.messages) if m["role"] == "assistant")
        for m in a.messages[:last_turn]:        # each result the model was shown after: in the
            if m["role"] == "tool":             # unmasked context, as ids (a run stopped by a limit
                                                # ends on results no turn saw)
                piece = encode_ordinary(tok, m["content"])
                assert any(_contains(u, piece) for u in unmasked), m["content"][:80]
        assert a.reward == float(a.solved) and set(a.terms) == {"format", "read"}
        rewards.append(a.reward)
    assert a.seed == 103 and [x.index for x in attempts] == [0, 1, 2, 3]


def _contains(seq, piece):
    n = len(piece)
    return any(seq[i:i + n] == piece for i in range(len(seq) - n + 1))


def test_a_rollout_is_refused_held_out_tasks(practice, tmp_path):
    tasks_dir, heldout_dir, model_dir = practice
    with pytest.raises(UserError, match="held-out"):
        load_training_tasks(heldout_dir)
    import shutil
    mixed = tmp_path / "mixed"
    shutil.copytree(tasks_dir, mixed)
    shutil.copytree(heldout_dir / "heldout-t1-000001", mixed / "heldout-t1-000001")
    assert len(load_tasks(mixed)) == 3
    with pytest.raises(UserError, match="held-out"):
        load_training_tasks(mixed)
    p = subprocess.run([sys.executable, "-m", "groundup", "train", "rl", "--init", str(model_dir),
                        "--tasks", str(mixed), "--out", str(tmp_path / "run"), "--steps", "1"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "held-out" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "run").exists()                  # refused before anything was written


def test_terms_see_the_read_of_the_file_to_fix(practice):
    task = load_training_tasks(practice[0])[0]
    msgs = [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "a", "name": "read_file", "arguments": {"path": "./calc.py"}},
        {"id": "b", "name": "bash", "arguments": {}, "error": "bad JSON"}]},
        {"role": "tool", "tool_call_id": "a", "content": "1\tdef add(a, b):"},
        {"role": "tool", "tool_call_id": "b", "content": "error: bad"}]
    assert measure_terms(task, msgs) == {"format": 0.5, "read": 1.0}
