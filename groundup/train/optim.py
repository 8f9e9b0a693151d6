"""Optimizer and learning-rate schedule.

Design choices:
- AdamW with betas (0.9, 0.95) (the GPT-3/Llama setting: a shorter second-moment memory copes
  better with loss spikes than 0.999), weight decay only on matrices (norm gains are scales,
  shrinking them towards 0 fights the normalisation), fused kernel where torch has one.
- The schedule is a pure function of the step -- linear warmup, then cosine decay to
  `min_lr_frac` of the peak -- so a resumed run needs nothing but the step to be exact.
- Derived defaults (the `depth` dial): the peak learning rate shrinks as the model widens,
  lr = 3e-3 * sqrt(256 / d_model), the usual ~1/sqrt(width) rule for Adam, anchored at a value
  that trains our small CPU models quickly without spikes.
- No Muon: on the tiny CPU models here (depth <= 4, a few hundred steps) we judged it would
  not repay its ~80 lines and the extra state in checkpoints; AdamW is the baseline every
  reference (nanoGPT, HF Trainer) uses, which keeps the comparison in bench/train.py fair.
"""

from __future__ import annotations

import math

import torch


def default_lr(d_model: int) -> float:
    return 3e-3 * math.sqrt(256 / d_model)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.1,
                   betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel for all parameters (CPU and CUDA in torch >= 2.4); foreach otherwise
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8)


def lr_at(step: int, peak: float, total_steps: int, warmup_steps: int, min_lr_frac: float = 0.1) -> float:
    """Learning rate for optimizer step `step` (0-based)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    cos = 0.5 * (1.0 + math.cos(math.pi * progress))   # 1 -> 0
    return peak * (min_lr_frac + (1.0 - min_lr_frac) * cos)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr
