"""The optimisation loop, shared by pretraining and fine-tuning: resumable and data-parallel.

    train_loop(cfg, d, model, train_ds, val_ds, token_bytes, run, peak_lr, sample_prompt, decode, stop_ids)

Design choices:
- One loop. Pretraining and SFT differ only in their data (every target counts vs. only the
  assistant's) and their starting weights; the loss is a *sum* over the targets that count,
  divided by how many count in the whole global batch -- so a row with few assistant tokens
  weighs what its tokens weigh, and 1 process, N processes and N micro-steps all compute the
  same mean.
- The loss: `model(x, targets=y)` fuses the output head into the cross-entropy (model/loss.py)
  and runs it on the targets that count only; the (B, T, V) logits are never held.
- Data parallel (train/dist.py): each rank takes its rows of the same global batch
  (data.Loader); DDP averages gradients, so each rank's loss is scaled by `world`. Gradient
  accumulation skips the all-reduce (`no_sync`) on all but the last micro-step.
- Resume is exact: a checkpoint holds model, optimizer, step, loader position and RNG state;
  the learning rate is a function of the step; samples draw from their own seeded generator
  (train/validation.py), so a resumed run continues the same sequence of steps.
- torch.compile is off by default: it pays on a GPU, while on a CPU its compile time outweighs
  the gain for the speedrun's few-minute stages (docs/lab/2026-12-03-measurements-behind-the-code.md).
- Ctrl-C / SIGTERM finish the step, save a checkpoint and then stop (train/stop.py): nothing
  trained is lost, whatever `save_every` is.
- A model with hand-written induction heads keeps them: the circuit's weights are put back
  after every optimizer step (train/circuits.py, Pins; a no-op for any other model).
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import torch

from groundup.errors import UserError
from groundup.io import append_jsonl, atomic_write_json
from groundup.model.llama import compile_model
from groundup.tokenizer.special import N_SPECIAL
from groundup.train import checkpoint as ckpt
from groundup.train.circuits import Pins
from groundup.train.config import LoopConfig, config_dict
from groundup.train.data import IGNORE, Loader
from groundup.train.dist import Dist
from groundup.train.optim import lr_at, make_optimizer, set_lr
from groundup.train.precision import autocast
from groundup.train.probes import copy_accuracy
from groundup.train.progress import Progress, flops_per_token, peak_flops
from groundup.train.rundir import trim_metrics
from groundup.train.stop import StopAtStep
from groundup.train.validation import evaluate, generate_sample


def train_loop(cfg: LoopConfig, d: Dist, model, train_ds, val_ds, token_bytes, run: Path,
               peak_lr: float, sample_prompt: list[int] | None, decode, stop_ids: tuple[int, ...]) -> dict:
    """Run (or resume) the optimisation until cfg.steps; returns the last metrics."""
    if cfg.seq_len > model.config.max_seq_len:
        raise UserError(f"--seq-len {cfg.seq_len} is above the model's context of "
                        f"{model.config.max_seq_len} tokens -- use --seq-len <= {model.config.max_seq_len} "
                        "(or pretrain with --context-len >= the fine-tuning length)")
    micro = cfg.micro_batch or max(1, cfg.batch_size // d.world)
    if cfg.batch_size % (micro * d.world):
        raise UserError(f"--batch-size {cfg.batch_size} is not a multiple of micro-batch {micro} x "
                        f"{d.world} processes -- pick sizes that divide")
    accum = cfg.batch_size // (micro * d.world)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(100, max(1, cfg.steps // 20))
    n_tokens = max(2, model.config.vocab_size - N_SPECIAL)   # ordinary ids, for the copy probe

    model.to(d.device)
    opt = make_optimizer(model, peak_lr, cfg.weight_decay, kind=cfg.optimizer)
    loader = Loader(train_ds, micro, accum, cfg.seed, d.rank, d.world)
    step, elapsed, tokens_seen = 0, 0.0, 0
    state = ckpt.load_latest(run / "checkpoints", map_location=d.device, warn=d.say)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and d.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), d.device)
        step, elapsed, tokens_seen = state["step"], state["elapsed"], state["tokens"]
        d.say(f"resuming {run} from step {step}")
    pins = Pins(model)   # a model with wired induction heads keeps them (train/circuits.py)
    if d.main:   # records after the checkpoint will be made again (no checkpoint: all of them)
        trim_metrics(run / "metrics.jsonl", step if state is not None else -1)
    d.barrier()

    fwd = compile_model(model) if cfg.compile else model
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        fwd = DDP(fwd, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    flops_tok, peak = flops_per_token(model, cfg.seq_len), peak_flops(d.device)
    prog = Progress(cfg.steps, step, cfg.log_every, d.main and not cfg.quiet)
    metrics_path = run / "metrics.jsonl"
    last: dict[str, Any] = {}

    def do_eval(at: int) -> None:
        if val_ds is None or val_ds.n_items == 0:
            return
        r = {"step": at, **evaluate(model, val_ds, token_bytes, cfg, d, micro),
             "copy_acc": copy_accuracy(model, n_tokens)}
        if sample_prompt is not None and d.main:
            ids = generate_sample(model, sample_prompt, cfg.sample_tokens, cfg.seed * 1_000_003 + at,
                                  stop=stop_ids)
            r["sample"] = decode(sample_prompt + ids)
        if d.main:
            append_jsonl(metrics_path, r)
            bpb = f", val bpb {r['val_bpb']:.3f}" if "val_bpb" in r else ""
            turns = f", turns exact {r['val_turn_acc']:.0%}" if "val_turn_acc" in r else ""
            prog.message(f"step {at}: val loss {r['val_loss']:.4f}{bpb}, copy {r['copy_acc']:.0%}{turns}")
            if "sample" in r:
                prog.message("  sample: " + r["sample"][:300].replace("\n", "\n          "))
        last.update(r)

    def save(at: int) -> None:
        if d.main:
            rng = {"torch": torch.get_rng_state()}
            if d.device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(d.device)
            ckpt.save_checkpoint(run / "checkpoints", at, {
                "step": at, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "loader": loader.state_dict(), "rng": rng, "elapsed": elapsed, "tokens": tokens_seen,
                "config": config_dict(cfg)}, keep=cfg.keep_checkpoints)
            atomic_write_json(run / "train_state.json", {"step": at, "finished": at >= cfg.steps})
        d.barrier()

    if step == 0:
        do_eval(0)
    model.train()
    with StopAtStep() as stop:
        while step < cfg.steps:
            t0 = time.perf_counter()
            lr = lr_at(step, peak_lr, cfg.steps, warmup, cfg.min_lr_frac)
            set_lr(opt, lr)
            batches = loader.next_step()
            n_tgt = d.sum(sum((y != IGNORE).sum() for _, y in batches).to(d.device)).clamp(min=1)
            step_loss = torch.zeros((), device=d.device)
            for i, (x, y) in enumerate(batches):
                x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
                sync = d.world == 1 or i == len(batches) - 1
                with (contextlib.nullcontext() if sync else fwd.no_sync()):
                    with autocast(cfg, d.device):
                        # summed nats over the targets that count (IGNORE is negative: none), the
                        # output head fused into the loss and run on those positions only (model/loss.py)
                        loss = fwd(x, targets=y)
                    (loss * (d.world / n_tgt)).backward()    # DDP averages over ranks: undo that
                step_loss += loss.detach()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            pins.restore()
            opt.zero_grad(set_to_none=True)
            step += 1
            loss_val = float(d.sum(step_loss) / n_tgt)
            if not math.isfinite(loss_val):
                raise RuntimeError(f"loss is {loss_val} at step {step}: lower --lr or check the data")
            dt = time.perf_counter() - t0
            elapsed += dt
            ntok = cfg.batch_size * cfg.seq_len
            tokens_seen += ntok
            tok_s = ntok / dt
            mfu = tok_s * flops_tok / (peak * d.world) if peak else None
            rec = {"step": step, "loss": loss_val, "lr": lr, "grad_norm": float(grad_norm),
                   "tokens_per_s": tok_s, "tokens": tokens_seen, "time": elapsed}
            if mfu is not None:
                rec["mfu"] = mfu
            if d.main:
                append_jsonl(metrics_path, rec)
            prog.update(step, loss_val, lr, tok_s, mfu)
            last.update(rec)
            if step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0):
                do_eval(step)
            saved = step == cfg.steps or (cfg.save_every and step % cfg.save_every == 0)
            if saved:
                save(step)
            if step < cfg.steps and stop.agreed(d):   # Ctrl-C / SIGTERM in the step: keep it, stop
                if not saved:
                    save(step)
                prog.close()
                d.say(f"stopped after step {step} of {cfg.steps}; a checkpoint holds it: run the "
                      "same command with --resume to continue")
                stop.reraise()
    prog.close()
    return last
