"""Muon for the hidden weight matrices, AdamW for the rest -- one optimizer, one state_dict.

    opt = Muon(groups, lr=..., betas=...)     groups made by optim.make_optimizer(kind="muon")

Muon (Keller Jordan, 2024; the optimizer of the modded-nanogpt and nanochat speedruns) takes
SGD's momentum and, for each weight *matrix*, replaces the update by the nearest semi-orthogonal
matrix -- every singular value set to ~1 -- computed with five Newton-Schulz iterations
(matrix products only). The update then moves the matrix the same amount in every direction it
moves at all, instead of mostly along the one or two directions that dominate the gradient, and
in practice a model reaches a given loss in fewer steps. That is what a fixed-minute speedrun
buys: each step counts.

Design choices:
- Only the matrices inside the transformer blocks (attention and MLP projections) get Muon;
  embeddings, the output head and norm gains stay on AdamW, as in the references: a lookup
  table's rows and a gain vector are not linear maps whose shape Muon's geometry is about.
- Our fused weights are several matrices stacked (q/k/v in `qkv_proj`, gate/up in
  `gate_up_proj`): each block is orthogonalised on its own (`splits`), as if unfused.
- The update of a block with more rows than columns is scaled by sqrt(rows/cols) (the
  reference's rule), so every block changes its outputs at a comparable rate.
- One torch Optimizer for both kinds, so the trainer's checkpoints, resume and learning-rate
  schedule work unchanged: a group's rate is the schedule's rate times its `lr_ratio`
  (Muon's rate is ~0.02 where Adam's is ~3e-3).
- The AdamW half is written out (a dozen lines, no fused kernel): it only updates the embedding
  table and the norm gains, a small share of the step.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

NS_COEFFS = (3.4445, -4.7750, 2.0315)   # the quintic's coefficients (Keller Jordan's tuning)


def orthogonalize(G: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """~ U V^T of G = U S V^T: G (r, c) with all singular values pushed to ~1 (within ~0.3)."""
    a, b, c = NS_COEFFS
    X = G.to(torch.bfloat16 if G.is_cuda else torch.float32)   # bf16 is fast on GPUs only
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T                                               # iterate on the short side: X X^T small
    X = X / (X.norm() + 1e-7)                                 # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        A = X @ X.T                                           # (short, short)
        X = a * X + (b * A + c * A @ A) @ X
    return (X.T if tall else X).to(G.dtype)


class Muon(torch.optim.Optimizer):
    """Param groups with muon=True take Muon steps (with `splits`: row blocks orthogonalised
    separately); the others take AdamW steps. Weight decay is decoupled in both."""

    def __init__(self, groups: Sequence[dict], lr: float, betas: tuple[float, float] = (0.9, 0.95),
                 eps: float = 1e-8, momentum: float = 0.95, ns_steps: int = 5):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=0.0, momentum=momentum,
                        ns_steps=ns_steps, muon=False, splits=None, lr_ratio=1.0)
        super().__init__(list(groups), defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            (self._muon if g["muon"] else self._adamw)(g)

    def _muon(self, g: dict) -> None:
        for p in g["params"]:
            if p.grad is None:
                continue
            st = self.state[p]
            if not st:
                st["momentum_buffer"] = torch.zeros_like(p)
            buf = st["momentum_buffer"]
            buf.lerp_(p.grad, 1 - g["momentum"])
            u = p.grad.lerp(buf, g["momentum"])               # Nesterov: look one step ahead
            blocks = u.split(g["splits"]) if g["splits"] else (u,)
            update = torch.cat([orthogonalize(b, g["ns_steps"]) * math.sqrt(max(1.0, b.shape[0] / b.shape[1]))
                                for b in blocks])
            p.mul_(1 - g["lr"] * g["weight_decay"])
            p.add_(update, alpha=-g["lr"])

    def _adamw(self, g: dict) -> None:
        b1, b2 = g["betas"]
        for p in g["params"]:
            if p.grad is None:
                continue
            st = self.state[p]
            if not st:
                st["step"] = torch.zeros(())
                st["exp_avg"] = torch.zeros_like(p)
                st["exp_avg_sq"] = torch.zeros_like(p)
            st["step"] += 1
            t = float(st["step"])
            p.mul_(1 - g["lr"] * g["weight_decay"])
            st["exp_avg"].lerp_(p.grad, 1 - b1)
            st["exp_avg_sq"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            denom = (st["exp_avg_sq"] / (1 - b2 ** t)).sqrt_().add_(g["eps"])
            p.addcdiv_(st["exp_avg"], denom, value=-g["lr"] / (1 - b1 ** t))
