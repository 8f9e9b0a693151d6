"""What a run reports while it trains: one status line, and model FLOPs utilisation (MFU).

    prog = Progress(total, start, every, enabled); prog.update(...); prog.message(...)
    mfu = tokens_per_s * flops_per_token(model, seq_len) / (peak_flops(device) * world)

MFU is the share of the hardware's peak the run's useful arithmetic reaches: 6 FLOPs per
parameter per token (forward 2, backward 4) plus attention's 12 * layers * width * seq_len
(PaLM's appendix B). It is shown only where we know the peak (a few NVIDIA GPUs, bf16 dense);
on a CPU the figure would mostly measure the memory system.
"""

from __future__ import annotations

import sys
import time

import torch

# bf16 dense peak FLOP/s of the GPUs we know, by a piece of their name
_PEAK_FLOPS = (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L4", 121e12),
               ("4090", 165e12), ("A10", 125e12))


def peak_flops(device: torch.device) -> float | None:
    """bf16 dense peak for the GPUs we know (for MFU); None elsewhere."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in _PEAK_FLOPS if key in name), None)


def flops_per_token(model, seq_len: int) -> float:
    cfg = model.config
    return 6 * model.num_params(exclude_embeddings=True) + 12 * cfg.n_layers * cfg.dim * seq_len


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
