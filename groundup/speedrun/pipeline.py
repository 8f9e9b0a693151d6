"""The speedrun pipeline: every layer of groundup, in the order the data flows.

    tokenizer -> pretrain -> tasks -> trajectories -> sft -> rl -> eval -> report

Design choices:
- A stage is a function that returns a small dict of numbers. When it finishes, that dict is
  written atomically to OUT/stages/<name>.json; on a rerun a stage with such a file is
  skipped and its numbers reused. A killed run therefore picks up at the first unfinished
  stage, and the training stages resume from their own last checkpoint inside it.
- Each stage calls the same library code as the corresponding CLI command (`groundup
  tokenizer train`, `train base`, `tasks generate`, `train sft`, `eval agent`): nothing here is
  special to the speedrun but the recipe (presets.py) and the report (report.py).
- The model is evaluated through `local:OUT/model` -- the same provider, agent loop, tools and
  test runs that `groundup --model local:OUT/model` uses, and that a frontier model would use.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from groundup.errors import UserError
from groundup.io import atomic_write_json, read_jsonl
from groundup.speedrun.presets import Preset

console = Console(stderr=True, highlight=False)

STAGES = ["tokenizer", "pretrain", "tasks", "trajectories", "sft", "rl", "eval"]
# what each stage reads, by the stage that wrote it (checked when only some stages are run)
NEEDS = {"tokenizer": [], "pretrain": ["tokenizer"], "tasks": [], "trajectories": ["tasks"],
         "sft": ["pretrain", "trajectories"], "rl": ["sft", "tasks"], "eval": ["sft", "tasks"]}
HELDOUT_SEED = 1_000_000      # held-out task seeds start here; training seeds start at 0
# what the pretrained model is asked to continue for the report card's sample: after a bare
# "def " a model of this size writes what follows "def"-less lines most often in its corpus --
# the codec tables (`0x41: 0x41,  # LATIN CAPITAL LETTER A`, 12% of the standard library's
# bytes) -- so it gets a real function first and continues after the next "def "
SAMPLE_PROMPT = '''def read_lines(path):
    """Return the lines of the file at path, without their newlines."""
    with open(path) as f:
        return [line.rstrip("\\n") for line in f]


def '''


def corpus_files(preset: Preset) -> list[Path]:
    from groundup.tokenizer import default_corpus_files
    files = default_corpus_files()
    if not files:
        raise UserError("the embedded corpus is empty: no .py files found in this Python's "
                        "standard library (sysconfig stdlib path)")
    if preset.corpus_skip_tables:
        from groundup.tokenizer.corpus import is_generated_table
        files = [f for f in files if not is_generated_table(f)]
    if preset.corpus_files and preset.corpus_files < len(files):
        step = len(files) / preset.corpus_files          # a spread, not just the first letters
        files = [files[int(i * step)] for i in range(preset.corpus_files)]
    return files


# ----------------------------------------------------------------------------- stages

def stage_tokenizer(out: Path, p: Preset) -> dict[str, Any]:
    from groundup.tokenizer import GPT2_PATTERN, GPT4_PATTERN, load_tokenizer, train_tokenizer
    files = corpus_files(p)
    n_bytes = sum(f.stat().st_size for f in files)
    console.print(f"  training a {p.vocab_size}-token byte-level BPE on {len(files)} files "
                  f"({n_bytes / 1e6:.1f} MB) of the Python standard library")
    t0 = time.monotonic()
    tmp = out / "tokenizer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    pattern = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}[p.tokenizer_split]
    train_tokenizer(files, vocab_size=p.vocab_size, pattern=pattern, progress=True).save(tmp)
    train_s = time.monotonic() - t0
    shutil.rmtree(out / "tokenizer", ignore_errors=True)
    os.replace(tmp, out / "tokenizer")
    tok = load_tokenizer(out / "tokenizer")
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    n_tokens = sum(len(ids) for ids in tok.encode_batch(texts))
    text_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return {"files": len(files), "bytes": text_bytes, "tokens": n_tokens,
            "bytes_per_token": round(text_bytes / max(n_tokens, 1), 3),
            "vocab_size": tok.vocab_size, "train_s": round(train_s, 1)}


def _run_stats(run: Path) -> dict[str, Any]:
    """Numbers from a training run's metrics.jsonl: final losses, tokens, throughput."""
    recs = list(read_jsonl(run / "metrics.jsonl")) if (run / "metrics.jsonl").exists() else []
    steps = [r for r in recs if "loss" in r]
    evals = [r for r in recs if "val_loss" in r]
    stats: dict[str, Any] = {"steps": steps[-1]["step"] if steps else 0}
    if steps:
        tail = steps[-min(20, len(steps)):]
        stats["final_loss"] = round(sum(r["loss"] for r in tail) / len(tail), 4)
        stats["tokens_per_s"] = round(sum(r.get("tokens_per_s", 0) for r in tail) / len(tail), 1)
        stats["tokens"] = steps[-1].get("tokens")
    if evals:
        stats["val_loss"] = round(evals[-1]["val_loss"], 4)
        if evals[-1].get("val_bpb") is not None:
            stats["val_bpb"] = round(evals[-1]["val_bpb"], 4)
        if evals[-1].get("val_turn_acc") is not None:
            stats["val_turn_acc"] = round(evals[-1]["val_turn_acc"], 3)
        if evals[-1].get("copy_acc") is not None:
            stats["copy_acc"] = round(evals[-1]["copy_acc"], 3)
        if evals[-1].get("sample"):
            stats["sample"] = evals[-1]["sample"]
    return stats


def _params(run: Path) -> int:
    from safetensors import safe_open
    with safe_open(str(run / "model.safetensors"), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def stage_pretrain(out: Path, p: Preset) -> dict[str, Any]:
    from groundup.train.data import read_meta
    from groundup.train.trainer import TrainConfig, pretrain
    files = corpus_files(p)
    console.print(f"  depth {p.depth}, {p.pretrain_steps} steps x {p.pretrain_batch} x "
                  f"{p.pretrain_seq} tokens, on the tokenized corpus")
    t0 = time.monotonic()
    run = pretrain(TrainConfig(
        out=str(out / "base"), data=[str(f) for f in files], tokenizer=str(out / "tokenizer"),
        data_dir=str(out / "data"), depth=p.depth, steps=p.pretrain_steps,
        # the model's context must hold the fine-tuning rows and the agent's conversations
        context_len=max(p.pretrain_seq, p.sft_seq),
        batch_size=p.pretrain_batch, seq_len=p.pretrain_seq, eval_every=p.eval_every,
        save_every=p.save_every, seed=p.seed, compile=p.compile, dtype=p.dtype,
        tie_embeddings=p.tie_embeddings, wire_induction=p.wire_induction,
        induction_match=p.induction_match, optimizer=p.optimizer, sample_prompt=SAMPLE_PROMPT))
    meta = read_meta(out / "data")                                       # the tokenized corpus
    stats = _run_stats(run)
    return {**stats, "params": _params(run), "depth": p.depth, "optimizer": p.optimizer,
            "corpus_files": meta["files"], "corpus_train_tokens": meta["tokens"]["train"],
            # how many times training read its corpus (the gpu run: validation best near 5, worse
            # by 15 -- docs/08)
            "passes": round((stats.get("tokens") or 0) / max(meta["tokens"]["train"], 1), 2),
            "wired_induction": p.wire_induction, "induction_match": p.induction_match,
            "seq_len": p.pretrain_seq, "batch_size": p.pretrain_batch, "sample_prompt": SAMPLE_PROMPT,
            "wall_s_this_session": round(time.monotonic() - t0, 1)}


def stage_tasks(out: Path, p: Preset) -> dict[str, Any]:
    import random

    from groundup.tasks.generate import generate, write_tasks
    from groundup.tasks.variants import vary
    counts: dict[str, Any] = {}
    shutil.rmtree(out / "tasks" / "heldout-varied.tmp", ignore_errors=True)
    for split, plan, base in (("train", p.sft_tasks, 0), ("heldout", p.eval_tasks, HELDOUT_SEED)):
        dest = out / "tasks" / split
        tmp = out / "tasks" / f"{split}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        for tier, n in plan.items():
            # seeds are disjoint across tiers and splits; held-out tasks also use a vocabulary
            # of identifiers never seen in training (groundup/tasks/vocab.py)
            tasks = generate(n, tier, split, seed=base + 100_000 * tier + p.seed)
            if split == "train" and p.sft_varied > 0:   # other layouts and words (variants.py)
                pick = random.Random(f"groundup-varied:{p.seed}:{tier}")
                tasks = [vary(t) if pick.random() < p.sft_varied else t for t in tasks]
            if split == "heldout" and tier == 1 and p.eval_varied > 0:
                write_tasks([vary(t) for t in tasks[:p.eval_varied]], out / "tasks" / "heldout-varied.tmp")
            write_tasks(tasks, tmp)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
        counts[split] = {f"tier{t}": n for t, n in plan.items()}
    if p.eval_varied > 0:
        shutil.rmtree(out / "tasks" / "heldout-varied", ignore_errors=True)
        os.replace(out / "tasks" / "heldout-varied.tmp", out / "tasks" / "heldout-varied")
        counts["heldout-varied"] = {"tier1": p.eval_varied}
    console.print(f"  {sum(p.sft_tasks.values())} training tasks, "
                  f"{sum(p.eval_tasks.values())} held-out tasks")
    return counts


def stage_trajectories(out: Path, p: Preset) -> dict[str, Any]:
    from groundup.tasks.oracle import record
    dirs = sorted(d for d in (out / "tasks" / "train").iterdir() if (d / "task.json").exists())
    dest = out / "sft" / "trajectories.jsonl"
    tmp = dest.with_suffix(".jsonl.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.unlink(missing_ok=True)
    console.print(f"  the oracle solves {len(dirs)} training tasks with the agent's real tools")
    bar = _Bar(len(dirs), "trajectories")
    # verify=False: the oracle's own last test run already shows the fix works, and the
    # generator validated every task; skipping the extra check saves a subprocess per task
    # threads: the time goes to the test subprocesses, so one per core (capped)
    workers = max(2, min(8, os.cpu_count() or 2))
    n = record(dirs, tmp, seed=p.seed, workers=workers, verify=False, progress=bar.update,
               diagnose=p.oracle_diagnostics, test_lines=p.oracle_test_lines)
    bar.close()
    os.replace(tmp, dest)
    rows = list(read_jsonl(dest))
    n_msgs = [len(r["messages"]) for r in rows]
    # a recovery: some tool call failed (a path that does not exist, an edit that did not
    # match) and the trajectory goes on to solve the task anyway
    recover = sum(1 for r in rows if any(m["role"] == "tool" and str(m.get("content", "")).startswith("error:")
                                         for m in r["messages"]))
    return {"trajectories": n, "avg_messages": round(sum(n_msgs) / max(len(n_msgs), 1), 1),
            "with_tool_errors": recover}


def stage_sft(out: Path, p: Preset) -> dict[str, Any]:
    from groundup.chat.format import render_conversation, render_prompt
    from groundup.tokenizer import load_tokenizer
    from groundup.train.trainer import SFTConfig, sft
    tok = load_tokenizer(out / "base")
    rows = list(read_jsonl(out / "sft" / "trajectories.jsonl"))
    examples = [render_conversation(r["messages"], r["tools"], tok) for r in rows]
    lengths = sorted(len(ids) for ids, _ in examples)
    console.print(f"  {len(examples)} conversations, median {lengths[len(lengths) // 2]} tokens, "
                  f"longest {lengths[-1]} (rows of {p.sft_seq})")
    sample = render_prompt(rows[0]["messages"][:2], rows[0]["tools"], tok)
    drills = []
    if p.sft_copy_share > 0:   # random spans written twice: copying stays general (train/copy_data.py)
        from groundup.train.copy_data import copy_examples
        drills = copy_examples(int(p.sft_copy_share * sum(lengths)), tok.n_ordinary, tok.bos_id, p.seed)
        console.print(f"  + {len(drills)} copy drills ({p.sft_copy_share:.0%} of the conversations' "
                      f"tokens) in the training rows")
    n_copy = len(drills)
    if p.sft_name_drills > 0:  # the wrong-name decision, on its own (tasks/drills.py)
        from groundup.tasks.drills import name_drills
        named = [render_conversation(m, None, tok) for m in name_drills(p.sft_name_drills, p.seed)]
        console.print(f"  + {len(named)} name drills ({sum(len(i) for i, _ in named):,} tokens)")
        drills += named
    run = sft(SFTConfig(
        init=str(out / "base"), out=str(out / "model"), steps=p.sft_steps, lr_scale=p.sft_lr_scale,
        batch_size=p.sft_batch, seq_len=p.sft_seq, eval_every=p.eval_every,
        save_every=p.save_every, seed=p.seed, compile=p.compile, dtype=p.dtype,
        optimizer=p.optimizer, sample_prompt_ids=sample[-p.sft_seq // 2:]), examples, drills)
    meta = json.loads((run / "data" / "meta.json").read_text())
    return {**_run_stats(run), "examples": len(examples), "copy_drills": n_copy,
            "name_drills": len(drills) - n_copy,
            "median_tokens": lengths[len(lengths) // 2], "max_tokens": lengths[-1],
            "truncated": meta["train"].get("truncated", 0),
            "loss_tokens": meta["train"].get("loss_tokens")}


def stage_rl(out: Path, p: Preset) -> dict[str, Any]:
    """Practice with a verifier: the fine-tuned model's own attempts at training tasks, rewarded
    when the tests pass (groundup/rl/). Off (0 steps) where it has not paid within the budget."""
    if not p.rl_steps:
        console.print("  off in this preset (rl_steps = 0): the evaluation runs the fine-tuned model "
                      "(docs/12-rl.md says what RL bought where it was measured)")
        return {"ran": False}
    from groundup.rl.config import RLConfig
    from groundup.rl.trainer import rl_train
    run = rl_train(RLConfig(
        init=str(out / "model"), tasks=str(out / "tasks" / "train"), out=str(out / "rl"),
        steps=p.rl_steps, group=p.rl_group, tasks_per_step=p.rl_tasks_per_step,
        temperature=p.rl_temperature, lr=p.rl_lr, kl_coef=p.rl_kl_coef,
        max_agent_steps=p.max_agent_steps,
        max_repeats=p.eval_max_repeats, turn_tokens=p.eval_turn_tokens, seed=p.seed))
    recs = list(read_jsonl(run / "metrics.jsonl"))
    k = max(1, len(recs) // 4)                # first and last quarter of the steps

    def mean(key: str, part: list[dict]) -> float:
        return round(sum(r[key] for r in part) / len(part), 3)
    return {"ran": True, "steps": len(recs), "attempts": sum(r["attempts"] for r in recs),
            "group": p.rl_group, "temperature": p.rl_temperature,
            "reward_first": mean("reward", recs[:k]), "reward_last": mean("reward", recs[-k:]),
            "solved_first": mean("solved", recs[:k]), "solved_last": mean("solved", recs[-k:]),
            "kl_last": round(recs[-1]["kl"], 4), "gen_tokens": sum(r["gen_tokens"] for r in recs),
            "rollout_s": round(sum(r["rollout_s"] for r in recs), 1),
            "update_s": round(sum(r["update_s"] for r in recs), 1)}


def eval_model_dir(out: Path) -> Path:
    """The model the evaluation runs: RL's when that stage trained one, else the fine-tuned one."""
    rl = out / "stages" / "rl.json"
    ran = rl.exists() and json.loads(rl.read_text()).get("ran")
    return out / "rl" if ran else out / "model"


def stage_eval(out: Path, p: Preset) -> dict[str, Any]:
    from groundup.tasks.check import load_tasks
    from groundup.tasks.evaluate import evaluate, format_summary
    tasks = load_tasks(out / "tasks" / "heldout")
    model = eval_model_dir(out)
    console.print(f"  the trained model runs as the agent (local:{model}) on "
                  f"{len(tasks)} held-out tasks, {p.max_agent_steps} steps at most each (a run that "
                  f"gets the same result for the same call {p.eval_max_repeats} times stops)")
    import torch
    # on a GPU the workers share one continuous-batching engine (8 threads each decoding alone
    # took ~60 s a task on an H200); on CPU where the preset says so (eval_shared_engine)
    shared = torch.cuda.is_available() or p.eval_shared_engine
    batch = p.eval_workers if shared and p.eval_workers > 1 else 0
    summary = evaluate(f"local:{model}", tasks, out / "eval", workers=p.eval_workers,
                       max_steps=p.max_agent_steps, compact_prompt=True,
                       max_repeats=p.eval_max_repeats,
                       model_options={"max_tokens": p.eval_turn_tokens, "batch": batch})
    console.print(format_summary(summary))
    if (out / "tasks" / "heldout-varied").is_dir():   # the same bugs, laid out and asked otherwise
        varied = evaluate(f"local:{model}", load_tasks(out / "tasks" / "heldout-varied"),
                          out / "eval-varied", workers=p.eval_workers, max_steps=p.max_agent_steps,
                          compact_prompt=True, max_repeats=p.eval_max_repeats,
                          model_options={"max_tokens": p.eval_turn_tokens, "batch": batch})
        summary["varied"] = {k: varied[k] for k in ("solved", "total", "rate", "by_kind")}
        console.print(f"  held-out layouts and wording: {varied['solved']} / {varied['total']}")
    return summary


STAGE_FUNCS: dict[str, Callable[[Path, Preset], dict[str, Any]]] = {
    "tokenizer": stage_tokenizer, "pretrain": stage_pretrain, "tasks": stage_tasks,
    "trajectories": stage_trajectories, "sft": stage_sft, "rl": stage_rl, "eval": stage_eval,
}

WHAT = {
    "tokenizer": "byte-level BPE on the Python standard library",
    "pretrain": "a Llama-style model learns Python from scratch",
    "tasks": "bug-fix tasks: training and held-out",
    "trajectories": "oracle runs of the agent's real tools, recorded for fine-tuning",
    "sft": "fine-tune on the trajectories: the model learns to call tools",
    "rl": "practise on training tasks, rewarded when the tests pass (GRPO)",
    "eval": "the trained model fixes held-out bugs through the real agent harness",
}


class _Bar:
    """A small rich progress bar for stages whose library call reports a count."""

    def __init__(self, total: int, label: str):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
            TimeRemainingColumn
        self.p = Progress(TextColumn(f"  {label}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=console, transient=True)
        self.p.start()
        self.t = self.p.add_task(label, total=total)

    def update(self, n: int) -> None:
        self.p.update(self.t, completed=n)

    def close(self) -> None:
        self.p.stop()


# ----------------------------------------------------------------------------- driver

def _read_marker(path: Path) -> dict | None:
    """A stage's or the preset's JSON file; None if it was damaged (written atomically, so only
    something outside groundup can have done that)."""
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def check_out_dir(out: Path, preset: Preset) -> None:
    """A run directory belongs to one preset: refuse to mix two recipes in one directory."""
    marker = out / "preset.json"
    if marker.exists():
        had = _read_marker(marker)
        if had is None:
            raise UserError(f"{marker} is damaged: restore it, or use another --out")
        # a setting added since that run was started counts as the same when it keeps its
        # default (new settings default to the old behaviour): old run directories resume
        default = Preset(name=preset.name).to_dict()
        now = {k: v for k, v in preset.to_dict().items() if k in had or v != default.get(k)}
        if had != now:
            raise UserError(f"{out} holds a speedrun with preset {had.get('name')!r} and other "
                            f"settings; use another --out (or delete {out}) to run {preset.name!r}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(marker, preset.to_dict())


def run_pipeline(out: Path, preset: Preset, stop_after: str | None = None,
                 only: list[str] | None = None) -> dict[str, dict]:
    """Run (or resume) every stage -- or only the stages in `only` -- and return {stage: numbers}.

    `only` lets the cheap stages run on one machine and the training on another: e.g. the
    tokenizer, tasks and trajectories on a CPU box, then the rest where the GPU is."""
    check_out_dir(out, preset)
    selected = set(only or STAGES)
    for name in STAGES:
        for need in NEEDS[name] if name in selected else []:
            if need not in selected and not (out / "stages" / f"{need}.json").exists():
                raise UserError(f"stage {name} needs the output of stage {need}, which has not run in "
                                f"{out}: add it to --only, or run it first")
    results: dict[str, dict] = {}
    for i, name in enumerate(STAGES, 1):
        marker = out / "stages" / f"{name}.json"
        header = f"[bold][{i}/{len(STAGES)}] {name}[/bold] — {WHAT[name]}"
        if marker.exists() and _read_marker(marker) is None:
            console.print(f"[yellow]warning:[/yellow] {marker} is damaged; running stage {name} again")
            marker.unlink()
        if marker.exists():
            results[name] = _read_marker(marker)
            console.print(f"{header} [dim](done earlier, {results[name].get('stage_s', 0):.0f} s; skipped)[/dim]")
        elif name not in selected:
            console.print(f"{header} [dim](not in --only; left for later)[/dim]")
        else:
            console.print(header)
            t0 = time.monotonic()
            stats = STAGE_FUNCS[name](out, preset)
            stats["stage_s"] = round(time.monotonic() - t0, 1)
            atomic_write_json(marker, stats)
            results[name] = stats
            console.print(f"  [green]done[/green] in {stats['stage_s']:.0f} s")
        if name == stop_after:
            break
    return results
