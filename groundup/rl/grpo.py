"""The update: a group-relative policy gradient on the model's own tokens.

A *group* is G attempts at the same task, sampled from the current model, each with a reward
r_i from the verifier (rollout.py). The advantage of attempt i is how much better it did than
its siblings:

    A_i = r_i - mean(r)                 (or (r_i - mean(r)) / (std(r) + eps) with std_norm)

and the loss, over the N tokens the model generated in the whole batch (mask 1), is

    L = 1/N  Σ_i Σ_t  [ -A_i · log π(y_it) + β · (ρ_it - log ρ_it - 1) ],    ρ = π_ref(y_it) / π(y_it)

where π is the model being trained, π_ref the model RL started from (the SFT model), and both
are the distribution the attempts were sampled from: softmax(logits / T) at the rollout
temperature T. Minimising the first term raises the probability of every token of an attempt
that beat its group and lowers it for one that did worse; a group whose attempts all earned
the same reward (all solved, or all failed) teaches nothing and contributes no gradient.

Design choices:
- On-policy, one optimizer step per batch of rollouts: the attempts were sampled by exactly
  the weights being updated, so PPO's ratio π/π_old is 1 and its clip never acts -- we leave it
  out (as nanochat's GSM8K RL does). A run that took several steps per batch would need it.
- A KL penalty towards the SFT model rather than a clip: what a few hundred attempts of policy
  gradient can break in a 2M-parameter model is its hard-won format (well-formed tool calls,
  copied names); the penalty pulls every sampled token back towards the SFT model's
  distribution. It is the k3 estimator (Schulman, "Approximating KL divergence", 2020): ρ - log
  ρ - 1 is >= 0 for every token and its mean is KL(π || π_ref) when y ~ π. Its gradient is zero
  where π = π_ref, so at the first step an all-zero group gives exactly zero gradient.
- Token-level normalisation (divide by the batch's N, as the SFT loss does): every generated
  token weighs the same (DAPO's choice); GRPO's per-attempt mean would make a 3-token answer
  weigh as much as a 300-token run.
- The mean of r is the baseline; dividing by the std is an option (`std_norm`), off by default:
  with 0/1 rewards it inflates a group with one success in eight to the size of an even one
  (Dr. GRPO, 2025, argues the same).
- The forward runs one row at a time (rows differ in length; padding would be wasted work on a
  CPU) with the gradient accumulated; the logits are computed only at the generated positions
  (`select`), as the SFT validation does.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


def group_advantages(rewards: Sequence[float], std_norm: bool = False, eps: float = 1e-6) -> list[float]:
    """Rewards of one group -> each attempt's advantage over its siblings."""
    n = len(rewards)
    mean = sum(rewards) / n
    adv = [r - mean for r in rewards]
    if std_norm:
        std = math.sqrt(sum(a * a for a in adv) / n)
        adv = [a / (std + eps) for a in adv]
    return adv


def token_logprobs(model, ids: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (T,), mask (T,) -> (log π(ids[t]) at every t with mask[t] = 1, their entropies), both
    (N,), in order; π = softmax(logits / temperature). Position t is predicted from ids[:t]."""
    x, y = ids[:-1], ids[1:]                                     # (T-1,) inputs and targets
    sel = mask[1:].bool()                                        # (T-1,) targets the model produced
    logits = model(x[None], select=sel[None]).float() / temperature   # (N, V)
    logp_all = F.log_softmax(logits, dim=-1)                     # (N, V)
    logp = logp_all.gather(1, y[sel][:, None]).squeeze(1)        # (N,)
    entropy = -(logp_all.exp() * logp_all).sum(-1)               # (N,)
    return logp, entropy


def grpo_backward(model, ref_model, rows: Sequence[tuple[list[int], list[int], float]],
                  temperature: float = 1.0, kl_coef: float = 0.0) -> dict[str, float]:
    """Accumulate the gradient of L (above) over rows of (ids, mask, advantage) into `model`'s
    .grad; returns the batch's loss, its two terms, the mean KL and entropy per token, and N.
    ref_model: the frozen starting model (for the KL term; None skips it and reports no KL)."""
    dev = next(model.parameters()).device
    n = sum(sum(m) for _, m, _ in rows)
    stats = {"loss": 0.0, "pg": 0.0, "kl": 0.0, "entropy": 0.0, "tokens": n}
    if n == 0:
        return stats
    for ids, mask, adv in rows:
        if not any(mask):
            continue
        ids_t = torch.tensor(ids, device=dev)
        mask_t = torch.tensor(mask, device=dev)
        logp, ent = token_logprobs(model, ids_t, mask_t, temperature)           # (N_row,)
        pg = -adv * logp.sum()
        kl_sum = torch.zeros((), device=dev)
        if ref_model is not None:
            with torch.no_grad():
                ref_logp, _ = token_logprobs(ref_model, ids_t, mask_t, temperature)
            log_ratio = ref_logp - logp                                       # log ρ
            kl_sum = (log_ratio.exp() - log_ratio - 1).sum()
        loss = (pg + kl_coef * kl_sum) / n
        if loss.requires_grad and (adv != 0 or (kl_coef and ref_model is not None)):
            loss.backward()
        stats["loss"] += float(loss.detach())
        stats["pg"] += float(pg.detach()) / n
        stats["kl"] += float(kl_sum.detach()) / n
        stats["entropy"] += float(ent.detach().sum()) / n
    return stats
