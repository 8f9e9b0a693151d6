"""The name decision, teacher-forced: how likely does a trained model find the right name?

Not a timing: a probe of a speedrun model (issue 28; results in
docs/lab/2026-12-03-speedrun-second-push.md). For each held-out name task (`wrong_variable`,
`wrong_attribute`) the oracle records its own trajectory in a scratch copy (with the
diagnostics call before the edit when --diagnose: use the setting the model was trained with);
the model reads it up to the fixing edit_file call, and at the first token where the right edit
and the unchanged line (new_string = old_string, the commonest failure) differ, we print the
probability of the right token and of the unchanged one, how often the right one is the argmax,
and in how many tasks the whole edit turn is greedy-exact.

    python bench/name_decision.py runs/s0/model runs/s0/tasks/heldout [--diagnose] [--out rows.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
from pathlib import Path

import torch

from groundup.agent.tools import CORE_TOOLS, Toolbox
from groundup.chat.format import render_conversation
from groundup.model.checkpoint import load_model
from groundup.tasks.check import load_tasks, python_on_path, remove_scratch, scratch_copy
from groundup.tasks.oracle import solve
from groundup.tokenizer import load_tokenizer

KINDS = ("wrong_variable", "wrong_attribute")


def probe(model, tok, task, diagnose: bool) -> dict:
    work = scratch_copy(task)
    try:
        msgs = solve(task, work, random.Random(f"groundup-oracle:0:{task.id}"), True, diagnose)
        tools = Toolbox(work, tools=CORE_TOOLS).schemas()
    finally:
        remove_scratch(work)
    # the fix: the last edit_file call that the tool accepted
    k = max(i for i, m in enumerate(msgs[:-1]) if m["role"] == "assistant"
            and any(c["name"] == "edit_file" for c in m.get("tool_calls") or [])
            and not str(msgs[i + 1].get("content", "")).startswith("error"))
    unchanged = copy.deepcopy(msgs[:k + 1])
    args = unchanged[k]["tool_calls"][0]["arguments"]
    args["new_string"] = args["old_string"]
    ids, mask = render_conversation(msgs[:k + 1], tools, tok)
    bad, _ = render_conversation(unchanged, tools, tok)
    d = next(i for i, (x, y) in enumerate(zip(ids, bad)) if x != y)      # the decision token
    last_other = max(j for j in range(len(mask)) if not mask[j])
    turn = [i for i in range(last_other + 1, len(ids))]                  # the edit turn's tokens
    off = max(0, len(ids) - model.config.max_seq_len)
    with torch.no_grad():
        logits = model(torch.tensor([ids[off:]]))[0]                     # (T, V)
    p = torch.softmax(logits[d - 1 - off].float(), -1)
    return {"id": task.id, "kind": task.bug_kind, "p_right": p[ids[d]].item(),
            "p_unchanged": p[bad[d]].item(), "right_argmax": int(p.argmax()) == ids[d],
            "exact": all(int(logits[i - 1 - off].argmax()) == ids[i] for i in turn if i - 1 >= off)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a trained model directory (e.g. runs/s0/model)")
    ap.add_argument("tasks", help="a held-out task directory (e.g. runs/s0/tasks/heldout)")
    ap.add_argument("--diagnose", action="store_true", help="the oracle calls diagnostics first")
    ap.add_argument("--out", help="write one row per task here (JSON)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    tok, model = load_tokenizer(Path(a.model)), load_model(a.model)
    with python_on_path():
        rows = [probe(model, tok, t, a.diagnose) for t in load_tasks(Path(a.tasks)) if t.bug_kind in KINDS]
    for kind in (*KINDS, "all"):
        r = [x for x in rows if kind in ("all", x["kind"])]
        if r:
            print(f"{kind}: {len(r)} tasks, edit turn exact {sum(x['exact'] for x in r)}, right name "
                  f"the argmax {sum(x['right_argmax'] for x in r)}, p(right) median "
                  f"{statistics.median(x['p_right'] for x in r):.3f} (max {max(x['p_right'] for x in r):.3f}), "
                  f"p(unchanged) median {statistics.median(x['p_unchanged'] for x in r):.3f}")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
