"""The run directory: checked before anything is written, a model directory when done.

    d, run, status = open_run(cfg, kind)     status: 'fresh' | 'resume' | 'finished'
    finish_run(d, run, model, tok, cfg)      config.json + model.safetensors + the tokenizer

Design choices:
- Everything is checked before anything is written (the configuration's numbers, the data, the
  tokenizer, the starting model: trainer.py and config.check_config), so a typo leaves --out as
  it was and the corrected command just works; a directory holding only a train_config.json
  (a run that never started) counts as fresh.
- A new run refuses a directory that holds something else; a resume refuses a different
  model/data/batch configuration (config.COMPATIBLE); a finished run returns at once, so the
  speedrun re-runs its stages for free. Every refusal says that nothing was overwritten.
- When it is done the run directory *is* a model directory, with checkpoints/, metrics.jsonl
  and train_config.json beside the weights: `groundup chat --model RUN` works on it.
- `metrics.jsonl` is cut back to the checkpoint's step on resume (trim_metrics), so each step
  appears once however often the run was interrupted.
"""

from __future__ import annotations

import json
from pathlib import Path

from groundup.errors import UserError
from groundup.io import atomic_write_json, atomic_write_text, read_jsonl
from groundup.train.config import ADDED_DEFAULTS, COMPATIBLE, LoopConfig, config_dict
from groundup.train.dist import Dist, setup_dist


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, OSError) as e:       # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(f"{path} is unreadable ({e}): the run directory is damaged -- restore the "
                        "file or choose a new --out") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} is not a JSON object: the run directory is damaged -- choose a new --out")
    return obj


def inspect_run_dir(run: Path, cfg: LoopConfig, kind: str) -> str:
    """'fresh', 'resume' or 'finished'; raises UserError for a directory we must not touch."""
    saved = run / "train_config.json"
    if saved.exists() and [p.name for p in run.iterdir()] == [saved.name]:
        return "fresh"     # a run that wrote its configuration and nothing else: nothing to keep
    if not saved.exists():
        if run.exists() and any(run.iterdir()):
            raise UserError(f"{run} exists and is not a groundup training run -- choose a new --out "
                            "(nothing was overwritten)")
        return "fresh"
    old = _read_json(saved)
    if not isinstance(old.get("config"), dict):
        raise UserError(f"{saved} has no configuration: the run directory is damaged -- choose a new --out")
    if old.get("kind") != kind:
        raise UserError(f"{run} holds a {old.get('kind')} run, not a {kind} run -- choose a new --out")
    if not cfg.resume:
        raise UserError(f"{run} already holds a training run -- pass --resume to continue it, "
                        "or choose a new --out (nothing was overwritten)")
    new = config_dict(cfg)
    was = {k: old["config"].get(k, ADDED_DEFAULTS.get(k)) for k in COMPATIBLE[kind]}
    diff = [f"{k}: {was[k]!r} -> {new.get(k)!r}" for k in COMPATIBLE[kind] if was[k] != new.get(k)]
    if diff:
        raise UserError(f"cannot resume {run}: its configuration differs ({'; '.join(diff)}) -- "
                        "use the same settings or a new --out (nothing was overwritten)")
    state = run / "train_state.json"
    if state.exists() and _read_json(state).get("step", -1) >= cfg.steps \
            and (run / "model.safetensors").exists():
        return "finished"
    return "resume"


def trim_metrics(path: Path, step: int) -> None:
    """Keep only the records of steps <= `step` (those after it will be run again)."""
    if path.exists():
        keep = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


def open_run(cfg: LoopConfig, kind: str) -> tuple[Dist, Path, str]:
    """Start the processes, check the run directory, and record the configuration of a new run."""
    d = setup_dist(cfg.device)
    run = Path(cfg.out)
    status = inspect_run_dir(run, cfg, kind)   # every rank reads before rank 0 writes
    d.barrier()
    if d.main and status == "fresh":
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run / "train_config.json", {"kind": kind, "config": config_dict(cfg)})
    d.barrier()
    return d, run, status


def finish_run(d: Dist, run: Path, model, tok, cfg: LoopConfig) -> None:
    """Write the final weights and the tokenizer: the run directory becomes a model directory."""
    from groundup.model import save_model
    if d.main:
        save_model(model, run)
        tok.save(run)
        atomic_write_json(run / "train_state.json", {"step": cfg.steps, "finished": True})
        d.say(f"done: {run} is a model directory", cfg.quiet)
    d.barrier()
