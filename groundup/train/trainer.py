"""The training loop, shared by pretraining and fine-tuning, resumable and data-parallel.

    pretrain(TrainConfig) -> run_dir      tokenizer (trained if none given) -> shards -> loop
    sft(SFTConfig) -> run_dir             model dir + (ids, mask) examples -> packed rows -> loop

Design choices:
- One loop. Pretraining and SFT differ only in their data (every target counts vs. only the
  assistant's) and their starting weights; the loss is a *sum* over the targets that count,
  divided by how many count in the whole global batch -- so a row with few assistant tokens
  weighs what its tokens weigh, and 1 process, N processes and N micro-steps all compute the
  same mean.
- Data parallel: under `torchrun` (RANK/WORLD_SIZE set) the model is wrapped in
  DistributedDataParallel (NCCL on GPU, gloo on CPU). Each rank takes its rows of the same
  global batch (data.Loader); DDP averages gradients, so we scale each rank's loss by `world`.
  Gradient accumulation skips the all-reduce (`no_sync`) on all but the last micro-step. Only
  rank 0 writes files; the others wait at barriers.
- Resume is exact: a checkpoint holds model, optimizer, step, loader position and RNG state;
  the learning rate is a function of the step; the sample generator has its own seeded RNG so
  generating text never moves the training RNG. `metrics.jsonl` is cut back to the
  checkpoint's step on resume, so each step appears once.
- A run directory is checked before anything is written: a new run refuses a directory that
  holds something else, a resume refuses a different model/data/batch configuration, and a
  finished run returns at once (the speedrun re-runs its stages for free).
- When it is done, the run directory is a model directory (config.json + model.safetensors +
  the tokenizer), with checkpoints/, metrics.jsonl and train_config.json beside them.
- Precision: `dtype="auto"` is bf16 autocast on a GPU with bf16, and on a CPU with AMX
  (bench/train.py: bf16 1.8x faster than float32 on 2 threads of the H100 host's CPU);
  float32 elsewhere: bf16 autocast measured ~10x *slower* on an AVX2-only AMD EPYC, and 1.5x
  slower on a Xeon with AVX512-BF16 but no AMX.
  Master weights, optimizer state and the loss stay float32 in every case.
- torch.compile is off by default: on a GPU it doubles throughput (bench/train.py), but on a
  CPU it costs 20-90 s of compilation for a 1.1-1.2x gain (2-core Xeon: 21 s cold, 1.16x at the
  cpu preset's shape), a wash for the speedrun's few-minute stages.
- The loss: `model(x, targets=y)` fuses the output head into the cross-entropy (model/loss.py)
  and runs it on the targets that count only; the (B, T, V) logits are never held.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from groundup.errors import UserError
from groundup.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from groundup.tokenizer.special import N_SPECIAL
from groundup.train import checkpoint as ckpt
from groundup.train.circuits import ROPE_THETA, Pins, wire_induction_heads
from groundup.train.probes import copy_accuracy, turn_hits
from groundup.train.data import (IGNORE, Loader, eval_batches, open_dataset, prepare_data,
                                 prepare_sft_data, token_byte_lengths)
from groundup.train.optim import default_lr, lr_at, make_optimizer, set_lr


# ----------------------------------------------------------------------------- configs

@dataclass(kw_only=True)
class LoopConfig:
    out: str                        # run directory
    steps: int = 500                # optimizer steps
    batch_size: int = 32            # global batch: sequences per optimizer step, all processes
    micro_batch: int | None = None  # sequences per forward per process (None: batch / world)
    seq_len: int = 256
    lr: float | None = None         # peak learning rate (None: derived from the model width)
    warmup_steps: int | None = None # None: 5% of the steps (at most 100)
    min_lr_frac: float = 0.1
    weight_decay: float = 0.1
    optimizer: str = "adamw"        # adamw | muon (train/muon.py: Muon for the block matrices)
    grad_clip: float = 1.0
    eval_every: int = 100           # validation loss + bits/byte + a sample (0: only at the end)
    eval_tokens: int = 32768        # validation tokens per evaluation
    sample_tokens: int = 48
    save_every: int = 100           # checkpoint every N steps (and at the end)
    keep_checkpoints: int = 2
    log_every: int = 0              # progress line every N steps when not a TTY (0: auto)
    seed: int = 0
    dtype: str = "auto"             # auto | float32 | bfloat16 (autocast)
    compile: bool = False           # torch.compile the model
    device: str = "auto"            # auto | cpu | cuda
    resume: bool = True             # continue a run found in `out` (False: refuse one)
    quiet: bool = False


@dataclass(kw_only=True)
class TrainConfig(LoopConfig):
    data: list[str] | None = None   # text files / directories (None: the embedded stdlib)
    data_dir: str | None = None     # where token shards go (None: OUT/data); reused if complete
    tokenizer: str | None = None    # tokenizer directory (None: train one, kept in OUT)
    vocab_size: int = 4096          # for the tokenizer trained when none is given
    depth: int = 4                  # the model dial: width 64*depth, depth layers
    context_len: int | None = None  # the model's context (max_seq_len); None: seq_len. Set it to
                                    # the fine-tuning length when SFT will use longer rows
    val_fraction: float = 0.02
    sample_prompt: str = "def "
    tie_embeddings: bool = False    # the output head shares the embedding matrix
    wire_induction: bool = False    # start from hand-written induction heads (train/circuits.py)
    induction_match: int = 1        # ...whose second head matches the last 1 or 2 tokens


@dataclass(kw_only=True)
class SFTConfig(LoopConfig):
    init: str = ""                  # model directory to start from (e.g. a pretraining run)
    data: str = ""                  # prepared SFT dir (prepare_sft_data) or JSONL of {"ids","mask"}
    val_fraction: float = 0.05
    lr: float | None = None         # None: a third of the pretraining rate for this width...
    lr_scale: float = 1.0           # ...times this (the cpu speedrun fine-tunes at 3: docs/08)
    weight_decay: float = 0.0
    min_lr_frac: float = 0.0
    sample_prompt_ids: list[int] | None = None   # e.g. a rendered chat prompt


# fields a resumed run must share with the run it continues
COMPATIBLE = {"pretrain": ("depth", "vocab_size", "tokenizer", "data", "seq_len", "batch_size", "seed",
                           "val_fraction", "context_len", "tie_embeddings", "wire_induction", "induction_match",
                           "optimizer"),
              "sft": ("init", "data", "seq_len", "batch_size", "seed", "val_fraction", "optimizer")}
# settings added after runs were already on disk: what such a run used
_ADDED_DEFAULTS = {"optimizer": "adamw", "induction_match": 1}


# ----------------------------------------------------------------------------- processes

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owned: bool = False             # we initialised the process group (so we tear it down)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            x = x.clone()
            dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x


def setup_dist(device: str = "auto") -> Dist:
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda but torch sees no CUDA GPU -- use --device cpu")
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return Dist(device=torch.device("cuda" if use_cuda else "cpu"))
    local = int(os.environ.get("LOCAL_RANK", 0))
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    owned = not dist.is_initialized()
    if use_cuda:
        torch.cuda.set_device(dev)
    if owned:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), dev, owned)


def _say(d: Dist, cfg: LoopConfig, msg: str, always: bool = False) -> None:
    """A line on stderr from rank 0; `quiet` silences all but warnings and resumes (always)."""
    if d.main and (always or not cfg.quiet):
        print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- run directory

def _config_dict(cfg: LoopConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def inspect_run_dir(run: Path, cfg: LoopConfig, kind: str) -> str:
    """'fresh', 'resume' or 'finished'; raises UserError for a directory we must not touch."""
    saved = run / "train_config.json"
    if not saved.exists():
        if run.exists() and any(run.iterdir()):
            raise UserError(f"{run} exists and is not a groundup training run -- choose a new --out "
                            "(nothing was overwritten)")
        return "fresh"
    old = json.loads(saved.read_text())
    if old.get("kind") != kind:
        raise UserError(f"{run} holds a {old.get('kind')} run, not a {kind} run -- choose a new --out")
    if not cfg.resume:
        raise UserError(f"{run} already holds a training run -- pass --resume to continue it, "
                        "or choose a new --out (nothing was overwritten)")
    new = _config_dict(cfg)
    was = {k: old["config"].get(k, _ADDED_DEFAULTS.get(k)) for k in COMPATIBLE[kind]}
    diff = [f"{k}: {was[k]!r} -> {new.get(k)!r}" for k in COMPATIBLE[kind] if was[k] != new.get(k)]
    if diff:
        raise UserError(f"cannot resume {run}: its configuration differs ({'; '.join(diff)}) -- "
                        "use the same settings or a new --out (nothing was overwritten)")
    state = run / "train_state.json"
    if state.exists() and json.loads(state.read_text()).get("step", -1) >= cfg.steps \
            and (run / "model.safetensors").exists():
        return "finished"
    return "resume"


def _trim_metrics(path: Path, step: int) -> None:
    """Keep only the records of steps <= `step` (those after it will be run again)."""
    if path.exists():
        keep = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


# ----------------------------------------------------------------------------- helpers

def cpu_has_fast_bf16() -> bool:
    """AMX: the CPUs on which bf16 autocast beats float32 (bench/train.py). AVX512-BF16 alone
    is not enough: on a 2-core Xeon with it and no AMX, bf16 trained 1.5x *slower* than fp32."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def resolve_dtype(cfg: LoopConfig, device: torch.device) -> str:
    if cfg.dtype != "auto":
        return cfg.dtype
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if cpu_has_fast_bf16() else "float32"


def _autocast(cfg: LoopConfig, device: torch.device):
    dtype = resolve_dtype(cfg, device)
    if dtype in ("float32", "fp32"):
        return contextlib.nullcontext()
    if dtype in ("bfloat16", "bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise UserError(f"unknown dtype {cfg.dtype!r} -- use auto, float32 or bfloat16")


def _peak_flops(device: torch.device) -> float | None:
    """bf16 dense peak for the GPUs we know (for MFU); None elsewhere."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L4", 121e12),
                       ("4090", 165e12), ("A10", 125e12)):
        if key in name:
            return flops
    return None


@torch.no_grad()
def generate_sample(model, prompt: list[int], n: int, seed: int, temperature: float = 0.8,
                    top_k: int = 40, stop: tuple[int, ...] = ()) -> list[int]:
    """A short sample with its own RNG (the training RNG must not move), through a KV cache:
    one prefill of the prompt, then one token per forward (an SFT prompt can be long)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    cfg = model.config
    p = next(model.parameters())
    T_max = min(cfg.max_seq_len, len(prompt) + n)
    prompt = prompt[-max(1, T_max - n):]                   # keep room for n new tokens
    cache = [tuple(torch.zeros(1, cfg.n_kv_heads, T_max, cfg.head_dim, device=p.device, dtype=p.dtype)
                   for _ in range(2)) for _ in range(cfg.n_layers)]
    was_training = model.training
    model.eval()
    logits = model(torch.tensor([prompt], device=p.device), cache=cache, pos=0, last_only=True)
    out: list[int] = []
    pos = len(prompt)
    while len(out) < n:
        v, i = torch.topk(logits[0, -1].float().cpu() / temperature, min(top_k, cfg.vocab_size))  # (k,)
        nxt = int(i[torch.multinomial(torch.softmax(v, -1), 1, generator=g)])
        out.append(nxt)
        if nxt in stop or pos >= T_max:
            break
        logits = model(torch.tensor([[nxt]], device=p.device), cache=cache, pos=pos, last_only=True)
        pos += 1
    model.train(was_training)
    return out


@torch.no_grad()
def evaluate(model, dataset, token_bytes: np.ndarray | None, cfg: LoopConfig, d: Dist, batch: int) -> dict:
    """Validation loss (nats/token) and bits per byte over the first eval_tokens of the split;
    for fine-tuning also the share of assistant turns reproduced exactly (turn_hits)."""
    model.eval()
    tb = torch.from_numpy(token_bytes.astype(np.int64)) if token_bytes is not None else None
    # loss sum, target count, bytes, loss over targets that have bytes, turns, exact turns
    tot = torch.zeros(6, dtype=torch.float64)
    rows = max(1, cfg.eval_tokens // cfg.seq_len)
    for x, y in eval_batches(dataset, batch, rows, d.rank, d.world):
        y = y.to(d.device)
        sel = y != IGNORE                                                  # (B, T)
        with _autocast(cfg, d.device):
            logits = model(x.to(d.device), select=sel)                     # (N, V): targets that count
        ys = y[sel]
        loss = F.cross_entropy(logits.float(), ys, reduction="none").double().cpu()   # (N,)
        tot[0] += loss.sum()
        tot[1] += ys.numel()
        if isinstance(cfg, SFTConfig):
            pred = y.clone()                       # positions without a target never count
            pred[sel] = logits.argmax(-1)
            tot[4:6] += torch.tensor(turn_hits(pred.cpu(), y.cpu()), dtype=torch.float64)
        if tb is not None:
            nb = tb[ys.cpu()]                                              # (N,) bytes per target
            tot[2] += nb.sum()
            tot[3] += loss[nb > 0].sum()
    model.train()
    tot = d.sum(tot.to(d.device)).cpu()
    out = {"val_loss": float(tot[0] / max(tot[1], 1))}
    if tot[2] > 0:
        out["val_bpb"] = float(tot[3] / math.log(2) / tot[2])
    if tot[4] > 0:
        out["val_turn_acc"] = float(tot[5] / tot[4])
    return out


class Progress:
    """One status line: `\\r`-rewritten on a terminal, every `every` steps otherwise."""

    def __init__(self, total: int, start: int, every: int, enabled: bool):
        self.total, self.start, self.enabled = total, start, enabled
        self.tty = sys.stderr.isatty()
        self.every = every or max(1, (total - start) // 20)
        self.t0 = time.time()

    def update(self, step: int, loss: float, lr: float, tok_s: float, mfu: float | None) -> None:
        if not self.enabled or not (self.tty or step % self.every == 0 or step == self.total):
            return
        done = step - self.start
        eta = (time.time() - self.t0) / done * (self.total - step) if done else 0.0
        m, s = divmod(int(eta), 60)
        line = (f"step {step}/{self.total} | loss {loss:.4f} | lr {lr:.2e} | "
                f"{tok_s / 1000:.1f}k tok/s | ETA {m}m{s:02d}s" + (f" | MFU {mfu:.1%}" if mfu else ""))
        if self.tty:
            print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def message(self, msg: str) -> None:
        if self.enabled:
            print(("\r" + " " * 100 + "\r" if self.tty else "") + msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the loop

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
    state = ckpt.load_latest(run / "checkpoints", map_location=d.device,
                             warn=(lambda m: _say(d, cfg, m, always=True)))
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and d.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), d.device)
        step, elapsed, tokens_seen = state["step"], state["elapsed"], state["tokens"]
        _say(d, cfg, f"resuming {run} from step {step}", always=True)
    pins = Pins(model)   # a model with wired induction heads keeps them (train/circuits.py)
    if d.main:   # records after the checkpoint will be made again (no checkpoint: all of them)
        _trim_metrics(run / "metrics.jsonl", step if state is not None else -1)
    d.barrier()

    fwd = torch.compile(model) if cfg.compile else model
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        fwd = DDP(fwd, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    n_params = model.num_params(exclude_embeddings=True)
    flops_per_token = 6 * n_params + 12 * model.config.n_layers * model.config.dim * cfg.seq_len
    peak_flops = _peak_flops(d.device)
    prog = Progress(cfg.steps, step, cfg.log_every, d.main and not cfg.quiet)
    metrics_path = run / "metrics.jsonl"
    last: dict[str, Any] = {}

    def do_eval(at: int) -> None:
        nonlocal last
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
                "config": _config_dict(cfg)}, keep=cfg.keep_checkpoints)
            atomic_write_json(run / "train_state.json", {"step": at, "finished": at >= cfg.steps})
        d.barrier()

    if step == 0:
        do_eval(0)
    model.train()
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
                with _autocast(cfg, d.device):
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
        mfu = tok_s * flops_per_token / (peak_flops * d.world) if peak_flops else None
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
        if step == cfg.steps or (cfg.save_every and step % cfg.save_every == 0):
            save(step)
    prog.close()
    return last


# ----------------------------------------------------------------------------- entry points

def _start(cfg: LoopConfig, kind: str) -> tuple[Dist, Path, str]:
    d = setup_dist(cfg.device)
    run = Path(cfg.out)
    status = inspect_run_dir(run, cfg, kind)   # every rank reads before rank 0 writes
    d.barrier()
    if d.main and status == "fresh":
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run / "train_config.json", {"kind": kind, "config": _config_dict(cfg)})
    d.barrier()
    return d, run, status


def _finish(d: Dist, run: Path, model, tok, cfg: LoopConfig) -> None:
    from groundup.model import save_model
    if d.main:
        save_model(model, run)
        tok.save(run)
        atomic_write_json(run / "train_state.json", {"step": cfg.steps, "finished": True})
        _say(d, cfg, f"done: {run} is a model directory")
    d.barrier()


def _teardown(d: Dist) -> None:
    if d.owned and dist.is_initialized():
        dist.destroy_process_group()


def pretrain(cfg: TrainConfig) -> Path:
    """Train a model from scratch; resumable; returns the run directory (a model directory)."""
    from groundup.model import ModelConfig, Transformer
    from groundup.tokenizer import default_corpus_files, load_tokenizer, train_tokenizer

    if cfg.context_len is not None and cfg.seq_len > cfg.context_len:
        raise UserError(f"--seq-len {cfg.seq_len} is above --context-len {cfg.context_len} -- "
                        "the model cannot attend further than its context")
    d, run, status = _start(cfg, "pretrain")
    try:
        if status == "finished":
            _say(d, cfg, f"{run} is already trained to step {cfg.steps}; nothing to do")
            return run
        paths = list(cfg.data) if cfg.data else default_corpus_files()
        if cfg.tokenizer:
            tok = load_tokenizer(cfg.tokenizer)
        elif (run / "tokenizer.json").exists():   # trained by this run before it was stopped
            tok = load_tokenizer(run)
        else:
            if d.main:
                _say(d, cfg, f"training a {cfg.vocab_size}-token tokenizer on the data")
                train_tokenizer(paths, vocab_size=cfg.vocab_size, progress=not cfg.quiet).save(run)
            d.barrier()
            tok = load_tokenizer(run)
        data_dir = Path(cfg.data_dir) if cfg.data_dir else run / "data"
        if d.main:
            prepare_data(paths, tok, data_dir, cfg.val_fraction, cfg.seed, progress=not cfg.quiet)
        d.barrier()
        mcfg = ModelConfig.from_depth(cfg.depth, tok.vocab_size, max_seq_len=cfg.context_len or cfg.seq_len,
                                      bos_token_id=tok.bos_id, eos_token_id=tok.eos_id,
                                      tie_embeddings=cfg.tie_embeddings,
                                      **({"rope_theta": ROPE_THETA} if cfg.wire_induction else {}))
        torch.manual_seed(cfg.seed)
        model = Transformer(mcfg)
        model.init_weights()
        if cfg.wire_induction:
            wired = wire_induction_heads(model, cfg.seed, cfg.induction_match)
            _say(d, cfg, f"wired position heads and two induction heads into the initial weights "
                         f"(copies {wired['copy_acc']:.0%} of random tokens"
                         f"{'; the other heads and MLPs of layers 0-1 start silent' if wired['silenced'] else ''})")
        train_ds = open_dataset(data_dir, "train", cfg.seq_len)
        val_ds = open_dataset(data_dir, "val", cfg.seq_len)
        tb = np.load(data_dir / "token_bytes.npy")
        _say(d, cfg, f"model: depth {cfg.depth}, {model.num_params() / 1e6:.2f}M parameters; "
                     f"data: {train_ds.n_items} training windows of {cfg.seq_len} tokens; "
                     f"{d.world} process(es) on {d.device}")
        prompt = [tok.bos_id] + list(tok.encode(cfg.sample_prompt))
        train_loop(cfg, d, model, train_ds, val_ds, tb, run, cfg.lr or default_lr(mcfg.dim),
                   prompt, lambda ids: tok.decode(ids[1:]), (tok.bos_id, tok.eos_id))
        _finish(d, run, model, tok, cfg)
        return run
    finally:
        _teardown(d)


def read_examples(path: str | os.PathLike):
    """(ids, mask) pairs from a JSONL of {"ids": [...], "mask": [...]} records."""
    for r in read_jsonl(path):
        yield r["ids"], r["mask"]


def sft(cfg: SFTConfig, examples: Iterable[tuple[Sequence[int], Sequence[int]]] | None = None,
        train_extra: Sequence[tuple[Sequence[int], Sequence[int]]] = ()) -> Path:
    """Fine-tune a model directory; resumable; returns the run directory (a model directory).

    The data: `examples` ((ids, mask) pairs, e.g. rendered by the chat layer), else `cfg.data` as a
    JSONL of {"ids", "mask"} records, else `cfg.data` as a directory from prepare_sft_data.
    Examples are packed for cfg.seq_len into OUT/data once; a resumed run reuses that.
    `train_extra`: more (ids, mask) pairs for the training rows only (train/copy_data.py).
    """
    from groundup.model import load_model
    from groundup.tokenizer import load_tokenizer

    if not cfg.init or not Path(cfg.init).is_dir():
        raise UserError(f"--init {cfg.init!r} is not a model directory -- give a pretraining run "
                        "directory or a model directory")
    if examples is None and (not cfg.data or not Path(cfg.data).exists()):
        raise UserError(f"fine-tuning data {cfg.data!r} does not exist")
    from groundup.model import ModelConfig
    context = ModelConfig.from_json_file(Path(cfg.init) / "config.json").max_seq_len
    if cfg.seq_len > context:   # checked before anything is written
        raise UserError(f"--seq-len {cfg.seq_len} is above the context of {cfg.init} ({context} tokens) "
                        f"-- use --seq-len <= {context}, or pretrain with --context-len {cfg.seq_len}")
    d, run, status = _start(cfg, "sft")
    try:
        if status == "finished":
            _say(d, cfg, f"{run} is already fine-tuned to step {cfg.steps}; nothing to do")
            return run
        tok = load_tokenizer(cfg.init)
        model = load_model(cfg.init)
        model = model.float()   # master weights in float32; autocast does the low precision
        data_dir = Path(cfg.data) if cfg.data else run / "data"
        if examples is not None or data_dir.is_file():   # raw examples: pack them once
            if examples is None:
                examples = read_examples(cfg.data)
            data_dir = run / "data"
            if d.main and not (data_dir / "meta.json").exists():
                prepare_sft_data(examples, data_dir, cfg.seq_len, pad_id=tok.eos_id,
                                 val_fraction=cfg.val_fraction, seed=cfg.seed,
                                 vocab_size=tok.vocab_size, token_bytes=token_byte_lengths(tok),
                                 train_extra=train_extra)
            d.barrier()
        train_ds = open_dataset(data_dir, "train", cfg.seq_len)
        val_ds = open_dataset(data_dir, "val", cfg.seq_len)
        tbp = data_dir / "token_bytes.npy"
        tb = np.load(tbp) if tbp.exists() else None
        meta = json.loads((data_dir / "meta.json").read_text())
        _say(d, cfg, f"fine-tuning {cfg.init}: {meta['train']['examples']} examples in "
                     f"{train_ds.n_items} packed rows, {meta['train']['loss_tokens']} assistant tokens")
        torch.manual_seed(cfg.seed)
        from groundup.tokenizer.special import EOT
        eot = tok.token_to_id(EOT) if hasattr(tok, "token_to_id") else None
        stops = tuple(i for i in (tok.eos_id, eot) if i is not None)
        train_loop(cfg, d, model, train_ds, val_ds, tb, run, cfg.lr or default_lr(model.config.dim) / 3 * cfg.lr_scale,
                   cfg.sample_prompt_ids, lambda ids: tok.decode(ids[len(cfg.sample_prompt_ids or []):]),
                   stops)
        _finish(d, run, model, tok, cfg)
        return run
    finally:
        _teardown(d)
