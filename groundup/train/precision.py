"""Which precision a run computes in: `dtype="auto"` picks bf16 autocast only where it is faster.

    resolve_dtype(cfg, device) -> "bfloat16" | "float32"
    autocast(cfg, device)      -> the context the forward passes run under

Design choices:
- bf16 autocast on a GPU that supports it, and on a CPU with AMX (its matrix unit); float32 on
  every other CPU. bf16 is a *speed* choice, and on CPUs without AMX it was measured slower than
  float32, not faster (bench/train.py; the figures are in docs/lab/2026-12-03-measurements-behind-the-code.md).
- Master weights, optimizer state and the loss stay float32 in every case: autocast only lowers
  the precision of the matmuls inside the forward and backward passes.
"""

from __future__ import annotations

import contextlib

import torch

from groundup.errors import UserError
from groundup.train.config import LoopConfig


def cpu_has_fast_bf16() -> bool:
    """AMX: the CPUs on which bf16 autocast beats float32. AVX512-BF16 alone is not enough."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def resolve_dtype(cfg: LoopConfig, device: torch.device) -> str:
    if cfg.dtype != "auto":
        return cfg.dtype
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if cpu_has_fast_bf16() else "float32"


def autocast(cfg: LoopConfig, device: torch.device):
    dtype = resolve_dtype(cfg, device)
    if dtype in ("float32", "fp32"):
        return contextlib.nullcontext()
    if dtype in ("bfloat16", "bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise UserError(f"unknown dtype {cfg.dtype!r} -- use auto, float32 or bfloat16")
