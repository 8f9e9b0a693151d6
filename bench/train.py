"""Training throughput: groundup's Transformer vs transformers' LlamaForCausalLM, same everything.

Both models get the same config (derived from --depth), batch, sequence length, dtype, the same
loss (cross-entropy on float32 logits) and the same optimizer (groundup's fused AdamW), and run
the same number of timed steps (forward + backward + clip + step) after warm-up steps, in
alternating rounds so that a noisy neighbour on a shared machine hits both alike. Prints
tokens/s of each and the ratio groundup / transformers, for float32 and bf16 autocast, and for
groundup under torch.compile (--compile; compile time is excluded and reported apart) and with
the Muon optimizer (--muon: what its Newton-Schulz iterations add to a step).

The loss is where the two differ, each side as its own trainer computes it: transformers
materialises the (B, T, V) float32 logits and takes F.cross_entropy of them (its `labels=` path
does the same); groundup calls `model(x, targets=y)`, which fuses the output head into the loss
and works through the logits chunk by chunk, the head's gradients made in the forward pass
(groundup/model/loss.py). --plain-loss times groundup with the transformers-style loss too.

--sft F times a fine-tuning step instead: only a share F of the targets carries a loss (the
assistant's turns, spans of 64 tokens; the cpu preset's rows have ~0.25). transformers computes
the logits of every position and ignores the rest (labels = -100, as its Trainer does); groundup's
fused loss drops the positions that carry no loss before the head.

    python bench/train.py [--depth 4] [--batch 8] [--seq 256] [--vocab 4096] [--steps 6] [--compile] [--muon] [--plain-loss]
    python bench/train.py --sft 0.25 --depth 3 --seq 2048 --dtypes fp32     # the cpu preset's SFT step
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

from groundup.model import ModelConfig, Transformer
from groundup.train.data import IGNORE
from groundup.train.optim import make_optimizer


def hf_model(cfg: ModelConfig):
    from transformers import LlamaConfig, LlamaForCausalLM
    hc = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.ffn_dim,
                     num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                     num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.head_dim,
                     max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps,
                     rope_theta=cfg.rope_theta, tie_word_embeddings=False, attention_bias=False)
    return LlamaForCausalLM(hc).train()


def make_step(model, hf: bool, dtype: str, optimizer: str = "adamw", fused: bool = True):
    """one training step; `fused` (groundup only): the trainer's loss, model(x, targets=y)"""
    opt = make_optimizer(model, 1e-3, kind=optimizer)
    dev = next(model.parameters()).device.type

    def step(x, y):
        with (torch.autocast(dev, dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()):
            if not hf and fused:
                loss = model(x, targets=y) / (y != IGNORE).sum()          # mean nats, as below
            else:
                logits = model(input_ids=x).logits if hf else model(x)    # (B, T, V)
                loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.flatten(),
                                       ignore_index=IGNORE)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    return step


def timed(step, x, y, n: int) -> float:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        step(x, y)
    sync()
    return n * x.numel() / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--muon", action="store_true",
                    help="also time groundup with --optimizer muon (the step's extra cost)")
    ap.add_argument("--plain-loss", action="store_true",
                    help="also time groundup with transformers' loss (full logits, then F.cross_entropy)")
    ap.add_argument("--sft", type=float, default=0.0, metavar="F",
                    help="time a fine-tuning step: a share F of the targets carries the loss")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    cfg = ModelConfig.from_depth(a.depth, a.vocab, max_seq_len=a.seq)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, a.vocab, (a.batch, a.seq), generator=g)
    y = torch.randint(0, a.vocab, (a.batch, a.seq), generator=g)
    if a.sft:      # spans of 64 counted targets, as many as give the share F
        if not 0.0 < a.sft <= 1.0:
            raise SystemExit(f"--sft takes a share in (0, 1], got {a.sft}")
        keep = torch.zeros(a.batch, a.seq, dtype=torch.bool)
        for b in range(a.batch):
            for s in range(0, a.seq, max(64, int(64 / a.sft))):
                keep[b, s:s + 64] = True
        y = y.masked_fill(~keep, IGNORE)
    print(f"depth {a.depth} ({cfg.dim} wide, {cfg.n_layers} layers), vocab {a.vocab}, batch {a.batch} x "
          f"seq {a.seq}, {torch.get_num_threads()} threads, torch {torch.__version__}, device {a.device}")
    if a.sft:
        print(f"fine-tuning step: {float((y != IGNORE).float().mean()):.0%} of the targets carry the loss")
    x, y = x.to(a.device), y.to(a.device)
    for dtype in a.dtypes.split(","):
        torch.manual_seed(0)
        ours = Transformer(cfg).to(a.device)
        ours.init_weights()
        theirs = hf_model(cfg).to(a.device)
        variants = {"groundup": make_step(ours, False, dtype),
                    "transformers": make_step(theirs, True, dtype)}
        if a.plain_loss:
            torch.manual_seed(0)
            pl = Transformer(cfg).to(a.device)
            pl.init_weights()
            variants["groundup+plain-loss"] = make_step(pl, False, dtype, fused=False)
        if a.muon:
            torch.manual_seed(0)
            mu = Transformer(cfg).to(a.device)
            mu.init_weights()
            variants["groundup+muon"] = make_step(mu, False, dtype, "muon")
        if a.compile:
            torch.manual_seed(0)
            comp = Transformer(cfg).to(a.device)
            comp.init_weights()
            t0 = time.perf_counter()
            variants["groundup+compile"] = make_step(torch.compile(comp), False, dtype)
            variants["groundup+compile"](x, y)
            print(f"  [{dtype}] torch.compile took {time.perf_counter() - t0:.1f}s (first step)")
        for s in variants.values():   # warm-up: allocator, kernels, optimizer state
            s(x, y)
            s(x, y)
        rates: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(a.rounds):
            for k, s in variants.items():
                rates[k].append(timed(s, x, y, a.steps))
        med = {k: statistics.median(v) for k, v in rates.items()}
        for k, v in med.items():
            print(f"  [{dtype}] {k:18s} {v:9.0f} tok/s   ratio vs transformers {v / med['transformers']:.2f}x")
    print("(ratio > 1: groundup trains faster than transformers on the same config)")


if __name__ == "__main__":
    main()
