"""`groundup speedrun`: train your own model on this machine, then watch it fix bugs as an agent.

    tokenizer -> pretrain -> tasks -> trajectories -> sft -> eval -> report card

The stages live in pipeline.py, the recipes in presets.py, the report card in report.py.
Every stage is resumable: rerun the same command after an interruption and it continues.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from groundup.argtypes import output_dir
from groundup.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from groundup.speedrun.pipeline import STAGES
    from groundup.speedrun.presets import PRESETS
    parser.description = (
        "The main job. Trains a byte-level BPE tokenizer and a small Llama-style model on the "
        "Python standard library that ships with this interpreter, fine-tunes it on agent "
        "trajectories recorded with the agent's real tools, then lets that model fix held-out "
        "bugs in generated repositories through the real agent harness, and writes a report "
        "card (report.md, plots, summary.json). Rerun the same command to resume after an "
        "interruption; finished stages are skipped.")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                        help="smoke: ~3 minutes, proves every stage works; cpu (default): a 2-core "
                             "laptop, ~30 minutes; gpu: one GPU")
    parser.add_argument("--out", type=output_dir, default=None,
                        help="run directory (default: runs/<preset>)")
    parser.add_argument("--seed", type=_seed, default=None,
                        help="the preset's seed changed (default: the preset's, 0): the "
                             "initial weights, the tasks and the data order; the headline is a "
                             "mean over seeds. Give each seed its own --out")
    parser.add_argument("--stop-after", default=None,
                        choices=STAGES,
                        help="stop after this stage (rerun without it to continue)")
    parser.add_argument("--only", default=None, metavar="STAGE[,STAGE...]", type=_stage_list,
                        help="run only these stages, e.g. tokenizer,tasks,trajectories on a CPU "
                             "machine, then the rest (rerun without --only) where the GPU is; a "
                             "stage whose input stage has not run is refused")


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise argparse.ArgumentTypeError(f"the seed must be a whole number >= 0, not {text!r}")
    return seed


def _stage_list(text: str) -> list[str]:
    from groundup.speedrun.pipeline import STAGES
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in STAGES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown stage {bad[0] if bad else text!r}: "
                                         f"choose from {','.join(STAGES)}")
    return names


def _warn_without_gpu(preset, out: Path, args: argparse.Namespace) -> None:
    """The gpu preset's training stages on a machine without CUDA would run for many hours: say
    so up front (and how to split the run), rather than let an ETA say it later. (Keyed on the
    name: a Preset field would change preset.json, and check_out_dir would refuse every existing
    run directory.)"""
    import torch

    from groundup.speedrun.pipeline import STAGES, console
    if preset.name != "gpu" or torch.cuda.is_available():
        return
    selected = args.only or (STAGES[:STAGES.index(args.stop_after) + 1] if args.stop_after else STAGES)
    todo = [s for s in selected if s in ("pretrain", "sft") and not (out / "stages" / f"{s}.json").exists()]
    if todo:
        tokens = {"pretrain": preset.pretrain_steps * preset.pretrain_batch * preset.pretrain_seq,
                  "sft": preset.sft_steps * preset.sft_batch * preset.sft_seq}
        console.print(f"[yellow]note:[/yellow] no CUDA GPU here, and the {preset.name} preset trains a "
                      f"depth-{preset.depth} model on ~{sum(tokens[s] for s in todo) / 1e6:.0f}M tokens "
                      f"({' and '.join(todo)}): many hours on a CPU. Run `--only "
                      "tokenizer,tasks,trajectories` here and the rest where a GPU is, or use --preset "
                      "cpu.", soft_wrap=True)   # soft_wrap: the flags stay on one line


def run(args: argparse.Namespace) -> int:
    from groundup.speedrun.pipeline import console, run_pipeline
    from groundup.speedrun.presets import PRESETS
    from groundup.speedrun.report import format_transcript, solved_transcript, write_report

    preset = PRESETS[args.preset]
    if getattr(args, "seed", None) is not None:
        preset = dataclasses.replace(preset, seed=args.seed)
    out = Path(args.out) if args.out else Path("runs") / preset.name
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    console.print(f"[bold]groundup speedrun[/bold] — preset {preset.name!r}, run directory {out}")
    _warn_without_gpu(preset, out, args)
    t0 = time.monotonic()
    results = run_pipeline(out, preset, stop_after=args.stop_after, only=args.only)
    if args.stop_after and args.stop_after != "eval":
        console.print(f"stopped after {args.stop_after}; rerun without --stop-after to continue")
        return 0
    if "eval" not in results:
        console.print(f"ran {','.join(args.only)} only; rerun without --only to continue")
        return 0
    summary = write_report(out, preset.name, results)
    console.print()
    console.print("[bold]Headline — held-out tasks solved by your model, through the real agent:[/bold]")
    for tier, s in summary["heldout"].items():
        console.print(f"  {tier}: {s['solved']} / {s['total']}")
    sol = solved_transcript(out)
    if sol:
        row, msgs = sol
        console.print(f"\n[bold]One solved task, turn by turn[/bold] ({row['id']}):")
        console.print(format_transcript(msgs), markup=False)
    console.print(f"\nreport card: {out / 'report.md'}   (this session: {time.monotonic() - t0:.0f} s; "
                  f"all stages: {summary['wall_s']:.0f} s)")
    console.print(f"talk to your model as an agent:  groundup --model local:{out / 'model'}")
    return 0
