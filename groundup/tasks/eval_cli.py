"""`groundup eval agent`: a model as a coding agent on bug-fix tasks, checked by real tests.

    groundup eval agent --model local:runs/cpu/model --generate 100 --tier 1 --split heldout
    groundup eval agent --model openai:gpt-4o-mini --tasks runs/cpu/eval/tasks --workers 4
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from groundup.argtypes import existing_path, nonneg_int, output_dir, positive_float, positive_int
from groundup.errors import UserError
from groundup.tasks.cli import tiers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Evaluate models on tasks. `agent`: run the real agent headless "
                          "(yolo, in a fresh copy of each task's repository, with a step limit), "
                          "restore the task's tests, run them, and write results.jsonl, "
                          "transcripts/ and summary.json (success by tier and bug kind).")
    sub = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    a = sub.add_parser("agent", help="a model as a coding agent on bug-fix tasks",
                       description="Run the agent with --model on each task; a task is solved "
                       "when all its fail_to_pass tests pass and its pass_to_pass tests still "
                       "pass. A rerun with the same --out skips tasks already done.")
    a.add_argument("--model", "-m", required=True, metavar="SPEC",
                   help="local:PATH | openai:NAME | anthropic:NAME | replay:FILE")
    a.add_argument("--base-url", metavar="URL", help="endpoint for openai: models")
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--tasks", metavar="DIR", type=existing_path,
                     help="a directory of tasks (DIR/<id>/task.json + repo/), or one task")
    src.add_argument("--generate", type=positive_int, metavar="N",
                     help="generate N tasks per tier into OUT/tasks first")
    a.add_argument("--tier", default=[1], type=tiers, help="with --generate: 1, 2, 3 or e.g. 1,2,3")
    a.add_argument("--split", choices=("train", "heldout"), default="heldout",
                   help="with --generate (default heldout)")
    a.add_argument("--seed", type=nonneg_int, default=0, help="with --generate: first seed")
    a.add_argument("--out", metavar="DIR", type=output_dir,
                   help="results directory (default runs/eval/<model>)")
    a.add_argument("--workers", type=positive_int, default=1, help="tasks run in parallel (default 1)")
    a.add_argument("--batch", type=nonneg_int, default=0, metavar="N",
                   help="local: models -- one model with a continuous-batching engine of N slots "
                        "serves all workers (use N = --workers on a GPU; default: a model per worker)")
    a.add_argument("--max-steps", type=positive_int, default=12, help="model turns per task (default 12)")
    a.add_argument("--max-seconds", type=positive_float, help="wall-time limit per task")
    a.add_argument("--max-repeats", type=nonneg_int, default=0, metavar="N",
                   help="stop a run when the model has made the same call with the same result "
                        "N times: it is going in circles (default 0: off)")
    a.add_argument("--fresh", action="store_true",
                   help="start over instead of skipping tasks already in results.jsonl")
    prompt = a.add_mutually_exclusive_group()
    prompt.add_argument("--compact-prompt", dest="compact_prompt", action="store_const",
                        const=True, help="the two-line system prompt for small models")
    prompt.add_argument("--full-prompt", dest="compact_prompt", action="store_const",
                        const=False, help="the full system prompt")
    from groundup.rag import eval_cli as rag_eval     # `eval retrieval` (issue 25)
    rag_eval.add_parser(sub)


def run(args: argparse.Namespace) -> int:
    if args.what == "retrieval":
        from groundup.rag import eval_cli as rag_eval
        return rag_eval.run(args)
    from groundup.tasks.check import load_task, load_tasks
    from groundup.tasks.evaluate import evaluate, format_summary
    out = Path(args.out or Path("runs/eval") / re.sub(r"[^\w.-]+", "_", args.model))
    if args.workers < 1 or args.max_steps < 1:
        raise UserError("--workers and --max-steps must be at least 1")
    if args.max_repeats < 0 or args.max_repeats == 1:
        raise UserError("--max-repeats must be 0 (off) or at least 2: a call made once is no repeat")
    from groundup.providers import parse_spec
    parse_spec(args.model)          # a wrong model string is refused before anything is written
    if args.generate is not None:
        from groundup.tasks.generate import generate_task
        tasks = []
        for tier in args.tier:
            for i in range(args.generate):
                task = generate_task(args.seed + i, tier, args.split)
                if not (out / "tasks" / task.id / "task.json").exists():
                    task.write(out / "tasks")
                tasks.append(load_task(out / "tasks" / task.id))
    else:
        tasks = load_tasks(args.tasks)
    options = {"base_url": args.base_url} if args.base_url else {}
    if args.batch:
        if not args.model.startswith("local:") or args.batch < 2:
            raise UserError("--batch N needs a local: model and N >= 2")
        options["batch"] = args.batch
    summary = evaluate(args.model, tasks, out, workers=args.workers, max_steps=args.max_steps,
                       compact_prompt=args.compact_prompt, max_seconds=args.max_seconds,
                       resume=not args.fresh, model_options=options,
                       max_repeats=args.max_repeats or None)
    print(format_summary(summary))
    print(f"results: {out / 'results.jsonl'}  summary: {out / 'summary.json'}")
    return 0
