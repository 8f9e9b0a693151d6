"""The exact first prompt a speedrun's model sees on a held-out task (docs/08-speedrun.md).

    python docs/examples/speedrun_prompt.py [--run runs/cpu] [--task heldout-t1-1100000]

The task is copied to a scratch directory the way the evaluation copies it (tasks/check.py),
and the real `Agent` (agent/loop.py) is started on it with the compact prompt, exactly as
`groundup speedrun`'s eval stage does (tasks/evaluate.py). Its model is a recorder that keeps
the messages and tool schemas the agent sends and answers nothing, so what is printed is the
agent's own first request -- then rendered by chat/format.py, which is what providers/local.py
does before the engine sees it: the text, the token ids, and the tokens one by one.

With --run, the task comes from that run's held-out set and the tokens from its tokenizer (and,
when the run has a fine-tuned model, the ids are checked against the ones LocalModel builds).
Without it, the task is the cpu preset's first held-out tier-1 task (seed 0), generated here,
and the tokenizer a tiny one trained here in about a second (1,024 tokens on 40 standard-library
files): the same text, more and shorter tokens than the speedrun's 4,096.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from groundup.chat.format import render_prompt, render_text
from groundup.errors import UserError
from groundup.providers.base import Finish, TextDelta
from groundup.tasks.check import TaskInfo, load_task, load_tasks, remove_scratch, scratch_copy
from groundup.tokenizer import load_tokenizer


class FirstRequest:
    """A Model (providers/base.py) that records what the agent sends and ends the turn."""
    name = "recorder"
    compact_prompt = True                      # what our own models ask for (providers/local.py)
    base_url = None

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.tools: list[dict[str, Any]] = []

    def check(self) -> None:
        pass

    def stream(self, messages, tools, *, max_tokens=None) -> Iterator[Any]:
        self.messages, self.tools = [dict(m) for m in messages], list(tools)
        yield TextDelta("")
        yield Finish("stop")


def the_task(run: Path | None, task_id: str | None, tmp: Path) -> TaskInfo:
    """A held-out task from the run, or the cpu preset's first tier-1 one, generated here."""
    if run is not None:
        heldout = run / "tasks" / "heldout"
        if task_id:
            return load_task(heldout / task_id)
        return next(t for t in load_tasks(heldout) if t.tier == 1)
    from groundup.speedrun.pipeline import HELDOUT_SEED
    from groundup.speedrun.presets import PRESETS
    from groundup.tasks.generate import generate_task
    seed = HELDOUT_SEED + 100_000 * 1 + PRESETS["cpu"].seed     # as the tasks stage seeds tier 1
    return load_task(generate_task(seed, 1, "heldout").write(tmp / "tasks"))


def the_tokenizer(run: Path | None, tmp: Path):
    """The run's tokenizer (the model's copy, which training saved beside the weights), or a
    tiny one trained on a slice of this interpreter's standard library."""
    if run is not None:
        for sub in ("model", "base", "tokenizer"):
            if (run / sub).is_dir():
                try:
                    return load_tokenizer(run / sub), f"{run / sub}"
                except UserError:
                    continue
        raise UserError(f"{run} holds no tokenizer (model/, base/ or tokenizer/): is it a speedrun's directory?")
    import dataclasses

    from groundup.speedrun.pipeline import corpus_files
    from groundup.speedrun.presets import PRESETS
    from groundup.tokenizer import train_tokenizer
    files = corpus_files(dataclasses.replace(PRESETS["cpu"], corpus_files=40))
    tok = train_tokenizer(files, vocab_size=1024, progress=False)
    return tok, f"a tiny tokenizer trained here (1,024 tokens, {len(files)} files; a speedrun's has 4,096)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a speedrun's directory (runs/cpu): its held-out task and tokenizer")
    ap.add_argument("--task", help="a held-out task id of that run (default: its first tier-1 task)")
    args = ap.parse_args()
    if args.task and not args.run:
        ap.error("--task names a task of a run: give --run too")
    if args.run is not None and not args.run.is_dir():
        ap.error(f"{args.run} is not a directory (a speedrun's --out)")

    from groundup.agent.loop import Agent
    with tempfile.TemporaryDirectory() as tmp:
        task = the_task(args.run, args.task, Path(tmp))
        tok, tok_from = the_tokenizer(args.run, Path(tmp))
        work = scratch_copy(task)                                   # /tmp/groundup-XXXX/repo
        try:
            model = FirstRequest()
            Agent(model, work, permission_mode="yolo", max_steps=1, compact_prompt=True).run(
                task.problem_statement)
        finally:
            remove_scratch(work)
        msgs, tools = model.messages, model.tools

        print(f"== task {task.id} (tier {task.tier}, {task.bug_kind}); tokenizer: {tok_from}")
        print("== what the agent sends: the messages")
        for m in msgs:
            print(json.dumps(m, ensure_ascii=False))
        print("== ... and the tools (their JSON schemas; names only here): " + ", ".join(t["name"] for t in tools))
        print("== rendered in our chat format (chat/format.py):\n" + render_text(msgs, tools, add_generation_prompt=True))

        ids = render_prompt(msgs, tools, tok)
        if args.run is not None and (args.run / "model" / "config.json").is_file():
            from groundup.providers.local import LocalModel
            same = LocalModel(args.run / "model").prompt_ids(msgs, tools) == ids
            print(f"== the ids LocalModel gives the engine for this request are these: {same}")
        specials = set(tok.special_tokens.values())

        def piece(i: int) -> str:
            s = tok.decode([i])
            return f"[{s}]" if i in specials else repr(s)[1:-1]

        a = ids.index(tok.special_tokens["<|tools|>"])
        b = ids.index(tok.special_tokens["<|end_of_turn|>"], a)
        u = ids.index(tok.special_tokens["<|user|>"])
        print(f"== {len(ids)} tokens: the system turn {a}, the tool lines {b - a + 1}, "
              f"the user's turn {len(ids) - 1 - u} (and the <|assistant|> header the model continues)")
        print("== the token ids:\n" + " ".join(map(str, ids)))
        print("== the tokens, one by one ([...] is one special token):\n" + " | ".join(piece(i) for i in ids))


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        sys.exit(f"speedrun_prompt.py: error: {e}")
