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
- Muon (`kind="muon"`, train/muon.py) is the option for the matrices inside the blocks:
  orthogonalised momentum at ~0.02, the embeddings and gains stay on AdamW. AdamW remains the
  default and the baseline every reference (nanoGPT, HF Trainer) uses, which keeps the
  comparison in bench/train.py fair.
"""

from __future__ import annotations

import math

import torch


def default_lr(d_model: int) -> float:
    return 3e-3 * math.sqrt(256 / d_model)


MUON_LR = 0.02          # Muon's peak rate at the derived default (the references use 0.02-0.05)
OPTIMIZERS = ("adamw", "muon")


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.1,
                   betas: tuple[float, float] = (0.9, 0.95), kind: str = "adamw") -> torch.optim.Optimizer:
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r} (choose from {', '.join(OPTIMIZERS)})")
    decay, no_decay, matrices = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if kind == "muon" and p.dim() == 2 and name.startswith("layers."):
            matrices.append((name, p))
        else:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if kind == "muon":
        from groundup.train.muon import Muon
        cfg = model.config
        ratio = MUON_LR / default_lr(cfg.dim)      # Muon's rate follows the schedule in proportion
        blocks = {"qkv_proj": [cfg.n_heads * cfg.head_dim] + [cfg.n_kv_heads * cfg.head_dim] * 2,
                  "gate_up_proj": [cfg.ffn_dim] * 2}
        for name, p in matrices:                   # one group each: its own block split
            splits = next((b for key, b in blocks.items() if f".{key}." in name), None)
            groups.append({"params": [p], "weight_decay": weight_decay, "muon": True,
                           "splits": splits, "lr_ratio": ratio})
        return Muon([g for g in groups if g["params"]], lr=lr, betas=betas)
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
        g["lr"] = lr * g.get("lr_ratio", 1.0)
