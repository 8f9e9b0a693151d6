"""The RL loop: rollouts through the agent harness, a group-relative update, repeat.

    rl_train(RLConfig(init="runs/cpu/model", tasks="runs/cpu/tasks/train", out="runs/rl"))

Each step:

    pick `tasks_per_step` training tasks -> `group` attempts at each, sampled at temperature T
    through one batched engine (rollout.py) -> rewards from the tests -> advantages within each
    group -> one optimizer step on the loss of grpo.py -> the engine gets the new weights

Design choices:
- Three copies of the model, each with one job: the *policy* (float32, trained), the
  *reference* (the starting weights, frozen: the KL term's π_ref), and the *engine's* (the
  LocalModel that the agents run on; after each step `Engine.load_weights` gives it the
  policy's new values in place). On a CPU the engine's copy keeps its decode layouts; on a GPU
  it may run in bf16 while the policy trains in float32.
- Resumable exactly like the other trainers: a checkpoint (train/checkpoint.py) holds the
  policy, the optimizer, the step, the elapsed time and torch's RNG; the *rollout buffer* is
  `rollouts/step_000012.jsonl`, one line per attempt written the moment it ends. A resumed
  step reuses the attempts already in its buffer and runs only the missing ones, each with the
  same seeds as before, so the update -- and every number in metrics.jsonl but the timings --
  is what an uninterrupted run computes (to the float rounding of batched decoding, which can
  flip a sampled token only at a near-tie; with batch 1 bit for bit).
- The tasks of a step are a pure function of (seed, step): each pass over the task list is a
  seeded permutation, so the schedule needs no state to resume.
- The learning rate is constant (after an optional warmup): RL steps are few, and each one's
  data comes from the model itself rather than from a fixed set being annealed over. By default
  it is a hundredth of the pretraining rate: AdamW moves every weight by ~lr on its first steps
  whatever the gradient's size, and at a tenth the cpu model's KL reached 0.18 nats/token and its
  well-formed tool calls fell from 75% to 48% in three steps (docs/lab/2026-12-03-rl.md).
- A wired model keeps its circuit (train/circuits.py `Pins`, restored after every step).
- The run directory is a model directory when done (config.json, model.safetensors, the
  tokenizer), so `groundup eval agent --model local:OUT` and the speedrun's eval use it as is.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from groundup.errors import UserError
from groundup.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from groundup.rl.config import RLConfig
from groundup.rl.grpo import group_advantages, grpo_backward
from groundup.rl.rollout import Attempt, Job, load_training_tasks, mix_seed, recovery_counts, rollout
from groundup.train import checkpoint as ckpt


# settings a resumed run must share with the run it continues (steps may grow)
COMPATIBLE = ("init", "tasks", "generate", "generate_tier", "group", "tasks_per_step", "temperature",
              "lr", "warmup_steps", "optimizer", "grad_clip", "kl_coef", "std_norm", "shaping",
              "max_agent_steps", "max_repeats", "turn_tokens", "seed")
DETERMINISTIC = ("reward", "solved", "format", "read", "groups_with_signal", "loss", "pg", "kl",
                 "entropy", "grad_norm", "gen_tokens", "train_tokens", "failed_edit", "recovered",
                 "agent_steps", "drift")   # the metrics a resumed run reproduces (not the timings)
GENERATE_SEED = 50_000        # generated RL tasks: training split, seeds apart from the speedrun's SFT tasks


def _say(cfg: RLConfig, msg: str, always: bool = False) -> None:
    if always or not cfg.quiet:
        print(msg, file=sys.stderr, flush=True)


def _inspect(run: Path, cfg: RLConfig) -> str:
    """'fresh', 'resume' or 'finished'; a UserError for a directory we must not touch."""
    saved = run / "rl_config.json"
    if not saved.exists():
        if run.exists() and any(run.iterdir()):
            raise UserError(f"{run} exists and is not an RL run -- choose a new --out (nothing was "
                            "overwritten)")
        return "fresh"
    if not cfg.resume:
        raise UserError(f"{run} already holds an RL run -- pass --resume to continue it, or choose "
                        "a new --out (nothing was overwritten)")
    old = json.loads(saved.read_text())
    new = dataclasses.asdict(cfg)
    diff = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in COMPATIBLE if old.get(k) != new[k]]
    if diff:
        raise UserError(f"cannot resume {run}: its configuration differs ({'; '.join(diff)}) -- use "
                        "the same settings or a new --out (nothing was overwritten)")
    state = run / "train_state.json"
    if (state.exists() and json.loads(state.read_text()).get("step", -1) >= cfg.steps
            and (run / "model.safetensors").exists()):
        return "finished"
    return "resume"


def _generated(cfg: RLConfig, run: Path) -> list:
    """cfg.generate fresh training-split tasks in OUT/tasks (made once: written whole, then
    renamed, so a kill never leaves half a set)."""
    d = run / "tasks"
    if not d.is_dir():
        import shutil

        from groundup.tasks.generate import generate, write_tasks
        tmp = run / "tasks.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        write_tasks(generate(cfg.generate, cfg.generate_tier, "train",
                             seed=GENERATE_SEED + 100_000 * cfg.generate_tier + cfg.seed), tmp)
        tmp.rename(d)
    return load_training_tasks(d)


def jobs_for(step: int, tasks: list, cfg: RLConfig) -> list[Job]:
    """The attempts of optimizer step `step` (0-based): tasks_per_step tasks, `group` each; every
    pass over the tasks is a permutation seeded by (seed, pass)."""
    jobs = []
    for j in range(cfg.tasks_per_step):
        k = step * cfg.tasks_per_step + j
        order = list(range(len(tasks)))
        random.Random(f"groundup-rl:{cfg.seed}:{k // len(tasks)}").shuffle(order)
        task = tasks[order[k % len(tasks)]]
        jobs += [Job(task, j, i, mix_seed(cfg.seed, step, j, i)) for i in range(cfg.group)]
    return jobs


def _trim_metrics(path: Path, step: int) -> None:
    if path.exists():
        keep = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


def step_metrics(attempts: list[Attempt]) -> dict[str, Any]:
    """What the rollouts of one step did: reward, solve rate, shaping terms, recovery."""
    n = len(attempts)
    groups: dict[int, list[float]] = {}
    for a in attempts:
        groups.setdefault(a.group, []).append(a.reward)
    return {"reward": sum(a.reward for a in attempts) / n,
            "solved": sum(a.solved for a in attempts) / n,
            "format": sum(a.terms["format"] for a in attempts) / n,
            "read": sum(a.terms["read"] for a in attempts) / n,
            "groups_with_signal": sum(1 for r in groups.values() if max(r) > min(r)),
            "gen_tokens": sum(a.gen_tokens for a in attempts),
            "agent_steps": sum(a.steps for a in attempts) / n,
            "drift": sum(a.drift for a in attempts),
            **recovery_counts([{"failed_edit": a.failed_edit, "solved": a.solved} for a in attempts])}


def format_step(run: str | Path, step: int, std_norm: bool = False) -> str:
    """One step's groups as a table: each attempt's reward, advantage, and what it did (from the
    rollout buffer; docs/12 prints one)."""
    attempts = [Attempt.from_dict(r) for r in read_jsonl(Path(run) / "rollouts" / f"step_{step:06d}.jsonl")]
    lines = [f"{'task':<18} {'try':>3} {'reward':>6} {'adv':>6} {'steps':>5}  {'stop':<13} {'tokens':>6}  last call"]
    for g in sorted({a.group for a in attempts}):
        members = sorted((a for a in attempts if a.group == g), key=lambda a: a.index)
        for a, adv in zip(members, group_advantages([a.reward for a in members], std_norm)):
            calls = [c for m in a.messages if m.get("role") == "assistant" for c in m.get("tool_calls") or []]
            last = (f"{calls[-1]['name']} {json.dumps(calls[-1].get('arguments'))}" if calls else "-")
            lines.append(f"{a.task_id:<18} {a.index:>3} {a.reward:>6.2f} {adv:>+6.2f} {a.steps:>5}  "
                         f"{a.stop_reason:<13} {a.gen_tokens:>6}  {last[:60]}")
    return "\n".join(lines)


def rl_train(cfg: RLConfig, on_step: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Run (or resume) RL until cfg.steps; returns the run directory (a model directory)."""
    from groundup.model import load_model, save_model
    from groundup.providers.local import LocalModel
    from groundup.tokenizer import load_tokenizer
    from groundup.train.circuits import Pins
    from groundup.train.optim import default_lr, lr_at, make_optimizer, set_lr

    if not Path(cfg.init, "config.json").is_file():
        raise UserError(f"--init {cfg.init!r} is not a model directory (no config.json) -- give the "
                        "directory of a fine-tuned model, e.g. runs/cpu/model")
    for name, v in (("steps", cfg.steps), ("group", cfg.group), ("tasks-per-step", cfg.tasks_per_step)):
        if v < 1:
            raise UserError(f"--{name} must be at least 1, got {v}")
    if cfg.group < 2:
        raise UserError("--group must be at least 2: an advantage compares attempts at the same task")
    if cfg.temperature <= 0:
        raise UserError(f"--temperature must be > 0 (rollouts must explore), got {cfg.temperature}")
    bad = set(cfg.shaping) - {"format", "read"}
    if bad:
        raise UserError(f"unknown shaping term {sorted(bad)[0]!r}: the terms are format and read")
    if bool(cfg.tasks) == bool(cfg.generate):
        raise UserError("give the tasks to practise on: --tasks DIR (training tasks) or --generate N")
    run = Path(cfg.out)
    status = _inspect(run, cfg)
    if status == "finished":
        _say(cfg, f"{run} is already trained to step {cfg.steps}; nothing to do")
        return run
    tasks = load_training_tasks(cfg.tasks) if cfg.tasks else None   # refused before anything is written
    run.mkdir(parents=True, exist_ok=True)
    if status == "fresh":
        atomic_write_json(run / "rl_config.json", dataclasses.asdict(cfg))
    if tasks is None:
        tasks = _generated(cfg, run)

    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available()
                          else "cpu" if cfg.device == "auto" else cfg.device)
    tok = load_tokenizer(cfg.init)
    policy = load_model(cfg.init, device=device).float()
    ref = load_model(cfg.init, device=device).float().eval().requires_grad_(False)
    engine_model = LocalModel(cfg.init, max_tokens=cfg.turn_tokens, batch=cfg.batch,
                              device=str(device))
    peak = cfg.lr if cfg.lr is not None else default_lr(policy.config.dim) / 100
    opt = make_optimizer(policy, peak, weight_decay=0.0, kind=cfg.optimizer)
    step, elapsed = 0, 0.0
    state = ckpt.load_latest(run / "checkpoints", map_location=device,
                             warn=lambda m: _say(cfg, m, always=True))
    if state is not None:
        policy.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        step, elapsed = state["step"], state["elapsed"]
        engine_model.engine.load_weights(policy.state_dict())
        _say(cfg, f"resuming {run} from step {step}", always=True)
    _trim_metrics(run / "metrics.jsonl", step)
    pins = Pins(policy)
    policy.train()
    _say(cfg, f"RL on {len(tasks)} training tasks: {cfg.steps} steps x {cfg.tasks_per_step} tasks x "
              f"{cfg.group} attempts at temperature {cfg.temperature:g}, KL coefficient "
              f"{cfg.kl_coef:g}, lr {peak:.2e}; {cfg.batch} attempts at a time through one engine")
    t_run = time.monotonic()
    try:
        while step < cfg.steps:
            # ---- rollouts (the buffer: attempts of this step already run are reused)
            t0 = time.perf_counter()
            buffer = run / "rollouts" / f"step_{step + 1:06d}.jsonl"
            done = {(a.group, a.index): a for a in map(Attempt.from_dict, read_jsonl(buffer))} \
                if buffer.exists() else {}
            if done:    # written back whole: a line a kill cut short must not swallow the next one
                atomic_write_text(buffer, "".join(json.dumps(a.to_dict(), ensure_ascii=False) + "\n"
                                                  for a in done.values()))
            jobs = jobs_for(step, tasks, cfg)
            todo = [j for j in jobs if (j.group, j.index) not in done]
            new = rollout(engine_model, todo, cfg.temperature, workers=min(cfg.batch, len(todo)),
                          on_done=lambda a: append_jsonl(buffer, a.to_dict()),
                          max_steps=cfg.max_agent_steps, max_repeats=cfg.max_repeats,
                          shaping=cfg.shaping, max_output_tokens=cfg.turn_tokens,
                          owner=str(run.resolve())) if todo else []
            attempts = sorted([*done.values(), *new], key=lambda a: (a.group, a.index))
            rollout_s = time.perf_counter() - t0

            # ---- the update
            t1 = time.perf_counter()
            lr = lr_at(step, peak, cfg.steps, cfg.warmup_steps, min_lr_frac=1.0) \
                if cfg.warmup_steps else peak
            set_lr(opt, lr)
            rows = []
            for g in sorted({a.group for a in attempts}):
                members = [a for a in attempts if a.group == g]
                for a, adv in zip(members, group_advantages([a.reward for a in members], cfg.std_norm)):
                    rows += [(ids, mask, adv) for ids, mask in a.rows]
            opt.zero_grad(set_to_none=True)
            stats = grpo_backward(policy, ref, rows, cfg.temperature, cfg.kl_coef)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip))
            opt.step()
            pins.restore()
            engine_model.engine.load_weights(policy.state_dict())
            update_s = time.perf_counter() - t1
            step += 1
            elapsed += rollout_s + update_s

            m = step_metrics(attempts)
            rec = {"step": step, **m, "loss": stats["loss"], "pg": stats["pg"], "kl": stats["kl"],
                   "entropy": stats["entropy"], "train_tokens": stats["tokens"], "grad_norm": grad_norm,
                   "lr": lr, "attempts": len(attempts), "rollout_s": round(rollout_s, 2),
                   "update_s": round(update_s, 2),
                   # the attempts run now (a resumed step reuses its buffered ones)
                   "tokens_per_s": round(sum(a.gen_tokens for a in new) / max(rollout_s, 1e-9), 1),
                   "time": round(elapsed, 1)}
            append_jsonl(run / "metrics.jsonl", rec)
            if on_step is not None:
                on_step(rec)
            left = (time.monotonic() - t_run) / max(1, step - (state["step"] if state else 0)) * (cfg.steps - step)
            _say(cfg, f"step {step}/{cfg.steps} | reward {rec['reward']:.2f} | solved {rec['solved']:.0%} | "
                      f"groups with signal {rec['groups_with_signal']}/{cfg.tasks_per_step} | "
                      f"KL {rec['kl']:.4f} | {rec['tokens_per_s']:.0f} tok/s | "
                      f"rollouts {rollout_s:.0f} s, update {update_s:.1f} s | ETA {int(left) // 60}m{int(left) % 60:02d}s")
            if step == cfg.steps or (cfg.save_every and step % cfg.save_every == 0):
                ckpt.save_checkpoint(run / "checkpoints", step, {
                    "step": step, "model": policy.state_dict(), "optimizer": opt.state_dict(),
                    "rng": {"torch": torch.get_rng_state()}, "elapsed": elapsed,
                    "config": dataclasses.asdict(cfg)}, keep=cfg.keep_checkpoints)
                atomic_write_json(run / "train_state.json", {"step": step, "finished": step >= cfg.steps})
    finally:
        engine_model.close()
    save_model(policy, run)
    tok.save(run)
    atomic_write_json(run / "train_state.json", {"step": cfg.steps, "finished": True})
    try:
        from groundup.rl.plot import plot_rl
        plot_rl(run)
    except ImportError:           # matplotlib is optional for a library user
        pass
    _say(cfg, f"done: {run} is a model directory")
    return run
