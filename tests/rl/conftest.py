"""A tiny world to practise in: one hand-made bug-fix task (a one-line repository and its test)
and a depth-1 model fitted for a few seconds on one solved conversation, so that sampled at a
temperature it sometimes fixes the bug and sometimes does not -- groups with real rewards,
through the real agent, tools and test runs. (Calibrated: at temperature 1.0 it solved 11 of 16
attempts, at 1.3 none; a change to the prompt or the tool list moves that.)"""

import json
from pathlib import Path

import pytest
import torch

from groundup.agent.prompt import system_prompt
from groundup.agent.tools import CORE_TOOLS, Toolbox
from groundup.chat.format import render_conversation, render_text
from groundup.chat.types import ToolCall

CALC = "def add(a, b):\n    return a - b\n"
TEST = ("import unittest\nfrom calc import add\n\n\nclass TestCalc(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n")
PROBLEM = "Fix add in calc.py: tests.test_calc.TestCalc.test_add fails."
FIX = {"path": "calc.py", "old_string": "a - b", "new_string": "a + b"}


def make_task(root: Path, task_id: str, split: str = "train") -> Path:
    d = root / task_id
    (d / "repo" / "tests").mkdir(parents=True)
    (d / "repo" / "calc.py").write_text(CALC)
    (d / "repo" / "tests" / "__init__.py").write_text("")
    (d / "repo" / "tests" / "test_calc.py").write_text(TEST)
    (d / "task.json").write_text(json.dumps({
        "id": task_id, "split": split, "tier": 1, "bug_kind": "arithmetic_operator",
        "problem_statement": PROBLEM, "fail_to_pass": ["tests.test_calc.TestCalc.test_add"],
        "pass_to_pass": [], "gold": [{"path": "calc.py", "old": "a - b", "new": "a + b", "line": 2}]}))
    return d


def solved_conversation(repo: Path) -> tuple[list[dict], list[dict]]:
    """The fix, through the real tools: read the file, edit the line, answer in one line."""
    box = Toolbox(repo, tools=CORE_TOOLS)
    # the path a rollout's working copy has (/tmp/groundup-XXXXXXXX/repo), fixed: the same
    # tokenizer and model on every run
    shown = Path("/tmp/groundup-q7x2m0kd/repo")
    messages = [{"role": "system", "content": system_prompt(shown, box, compact=True)},
                {"role": "user", "content": PROBLEM}]
    for i, (name, args) in enumerate((("read_file", {"path": "calc.py"}), ("edit_file", FIX))):
        call = ToolCall(name, dict(args), id=f"call_{i}")
        messages += [{"role": "assistant", "content": "", "tool_calls": [call.to_dict()]},
                     {"role": "tool", "tool_call_id": call.id, "name": name,
                      "content": box.execute(call).content}]
    return messages + [{"role": "assistant", "content": "Fixed add."}], box.schemas()


@pytest.fixture(scope="session")
def practice(tmp_path_factory):
    """(tasks dir with two training tasks, held-out tasks dir, model dir)."""
    from groundup.model import ModelConfig, Transformer, save_model
    from groundup.tokenizer import train_tokenizer
    from groundup.tokenizer.special import SPECIAL_TOKENS

    root = tmp_path_factory.mktemp("practice")
    for i in (1, 2):
        make_task(root / "tasks", f"train-t1-00000{i}")
    make_task(root / "heldout", "heldout-t1-000001", split="heldout")
    repo = root / "scratch" / "repo"
    repo.mkdir(parents=True)
    (repo / "calc.py").write_text(CALC)
    messages, tools = solved_conversation(repo)
    tok = train_tokenizer([render_text(messages, tools) + " a * b a + b a - b"] * 20,
                          vocab_size=256 + len(SPECIAL_TOKENS) + 600, progress=False)
    ids, mask = render_conversation(messages, tools, tok)
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_depth(1, vocab_size=tok.vocab_size, max_seq_len=1024))
    model.init_weights()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = torch.tensor([ids[:-1]])
    y = torch.tensor([[t if m else -1 for t, m in zip(ids[1:], mask[1:])]])
    for _ in range(120):
        (model(x, targets=y) / sum(mask)).backward()
        opt.step()
        opt.zero_grad()
    save_model(model, root / "model")
    tok.save(root / "model")
    return root / "tasks", root / "heldout", root / "model"
