"""`groundup tasks ...`: generate bug-fix tasks, validate them, record oracle trajectories.

    groundup tasks generate --n 100 --tier 1 --split heldout --out tasks/heldout --seed 0
    groundup tasks validate tasks/heldout
    groundup tasks oracle --tasks tasks/train --out sft.jsonl --workers 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from groundup.argtypes import existing_path, nonneg_int, output_dir, output_file, positive_int
from groundup.errors import UserError
from groundup.tasks import TIER_MEANING


def _tiers(text: str) -> list[int]:
    try:
        tiers = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        tiers = []
    if not tiers or any(t not in (1, 2, 3) for t in tiers):
        raise UserError(f"--tier {text!r}: use 1, 2, 3 or a list such as 1,2,3")
    return tiers


def tiers(text: str) -> list[int]:
    """argparse type for --tier (the same check as _tiers, refused while parsing)."""
    import argparse
    try:
        return _tiers(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix(f"--tier {text!r}: ")) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Bug-fix tasks for coding agents, in the shape SWE-bench uses: "
                          "DIR/<id>/task.json (problem_statement, fail_to_pass, pass_to_pass, "
                          "tier, bug_kind) and DIR/<id>/repo/ (a small Python package with "
                          "unittest tests and one injected bug).")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    g = sub.add_parser("generate", help="write N tasks per tier to a directory",
                       description="Generate tasks deterministically from --seed. "
                       + "; ".join(f"Tier {t}: {m}" for t, m in TIER_MEANING.items())
                       + ". The heldout split uses other seeds and identifiers never used in "
                       "train.")
    g.add_argument("--n", type=positive_int, default=10, help="tasks per tier (default 10)")
    g.add_argument("--tier", default=[1], type=tiers, help="1, 2, 3 or a list like 1,2,3 (default 1)")
    g.add_argument("--split", choices=("train", "heldout"), default="train")
    g.add_argument("--seed", type=nonneg_int, default=0, help="first seed; task i uses seed+i")
    g.add_argument("--out", required=True, metavar="DIR", type=output_dir, help="directory to write tasks into")

    v = sub.add_parser("validate", help="check that each task fails as given and passes "
                       "once its gold edits are applied (runs the tests for real)")
    v.add_argument("tasks", metavar="DIR", type=existing_path, help="a task directory or a directory of tasks")

    o = sub.add_parser("oracle", help="record oracle trajectories (JSONL) for fine-tuning",
                       description="Solve each task with the agent's real tools, driven by a "
                       "policy that knows the gold edit, and write one conversation per line: "
                       '{"task", "messages", "tools"}. Only tasks made by `groundup tasks '
                       'generate` carry the gold edits this needs.')
    o.add_argument("--tasks", required=True, metavar="DIR", type=existing_path)
    o.add_argument("--out", required=True, metavar="FILE.jsonl", type=output_file)
    o.add_argument("--seed", type=nonneg_int, default=0, help="seed of the policy's choices")
    o.add_argument("--workers", type=positive_int, default=1)
    o.add_argument("--full-prompt", action="store_true",
                   help="record with the full system prompt instead of the compact one")
    o.add_argument("--no-verify", action="store_true",
                   help="skip the extra run of all the task's tests after each trajectory "
                        "(its own last test run is still checked); faster")


def run(args: argparse.Namespace) -> int:
    if args.verb == "generate":
        return _generate(args)
    if args.verb == "validate":
        return _validate(args)
    return _oracle(args)


def _status(text: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{text}", end="", file=sys.stderr, flush=True)


def _generate(args: argparse.Namespace) -> int:
    from groundup.tasks.generate import generate_task
    total, done = args.n * len(args.tier), 0
    for tier in args.tier:
        for i in range(args.n):
            generate_task(args.seed + i, tier, args.split).write(args.out)
            done += 1
            _status(f"generated {done}/{total}")
    _status("")
    print(f"wrote {total} tasks to {args.out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from groundup.tasks.check import apply_gold, check, fresh_copy, load_tasks, run_tests
    tasks = load_tasks(args.tasks)
    bad = 0
    with tempfile.TemporaryDirectory(prefix="groundup-validate-") as tmp:
        for i, task in enumerate(tasks, 1):
            work = fresh_copy(task, Path(tmp) / task.id)
            before = run_tests(work, task.fail_to_pass + task.pass_to_pass)
            problems = [f"{t} passes before the fix" for t in task.fail_to_pass
                        if before[t] == "pass"]
            problems += [f"{t} fails before the fix ({before[t]})" for t in task.pass_to_pass
                         if before[t] != "pass"]
            if task.record.get("gold"):
                apply_gold(task, work)
                after = check(task, work)
                if not after.solved:
                    problems.append("not solved by its gold edits")
            for p in problems:
                print(f"{task.id}: {p}")
            bad += bool(problems)
            _status(f"validated {i}/{len(tasks)}")
    _status("")
    print(f"{len(tasks) - bad}/{len(tasks)} tasks valid")
    return 1 if bad else 0


def _oracle(args: argparse.Namespace) -> int:
    from groundup.tasks.check import load_tasks
    from groundup.tasks.oracle import record
    tasks = load_tasks(args.tasks)
    if not tasks[0].record.get("gold"):
        raise UserError(f"{tasks[0].dir} has no gold edits in task.json: the oracle needs "
                        "tasks made by `groundup tasks generate`")
    n = record([t.dir for t in tasks], args.out, seed=args.seed, compact=not args.full_prompt,
               workers=args.workers, verify=not args.no_verify,
               progress=lambda k: _status(f"recorded {k}/{len(tasks)}"))
    _status("")
    print(f"wrote {n} trajectories to {args.out}")
    return 0
