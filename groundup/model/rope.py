"""Rotary position embeddings (RoPE), in Hugging Face's `rotate_half` convention.

RoPE encodes a token's position by rotating pairs of channels of q and k by an angle that
grows with the position: pair i turns at frequency inv_freq[i] = theta^(-2i/d). The dot
product q.k then depends only on the *distance* between the two positions.

Design choices:
- Pairs are (i, i + d/2), not (2i, 2i+1): that is how HF (and therefore every Llama/Qwen
  checkpoint on the Hub) lays out q_proj/k_proj rows, so `rotate_half` is the convention that
  makes real weights work without permuting them.
- cos/sin come from a table computed in float32 exactly as HF computes it (position * inv_freq,
  then cos/sin), so logits match transformers to float rounding; the table grows on demand
  instead of being sized for a 128k context up front.
- Scaling for long context changes only the frequencies: `linear` divides them all by a
  factor; `llama3` divides only the low frequencies (long wavelengths) and blends in between.
"""

from __future__ import annotations

import math

import torch

from groundup.model.config import ModelConfig


def inv_frequencies(cfg: ModelConfig) -> torch.Tensor:
    """(head_dim/2,) float32 angular frequency of each rotated channel pair."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    s = cfg.rope_scaling or {}
    rtype = s.get("rope_type", "default")
    if rtype == "linear":
        inv_freq = inv_freq / s["factor"]
    elif rtype == "llama3":
        factor, lo, hi = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
        old_ctx = s["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        # long wavelengths (> old_ctx / lo) were never seen whole in pretraining: slow them down
        scaled = torch.where(wavelen > old_ctx / lo, inv_freq / factor, inv_freq)
        # in between the two thresholds, blend the scaled and unscaled frequency smoothly
        smooth = (old_ctx / wavelen - lo) / (hi - lo)
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_ctx / hi) & (wavelen <= old_ctx / lo)
        inv_freq = torch.where(medium, blended, scaled)
    return inv_freq


def rope_table(inv_freq: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (length, head_dim), float32; both halves repeat the same angles."""
    pos = torch.arange(length, dtype=torch.int64, device=inv_freq.device).float()
    freqs = pos[:, None] * inv_freq[None, :]            # (T, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)             # (T, D): pair i is (i, i + D/2)
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """HF's definition: (x1, x2) -> (-x2, x1). Kept as the reference that apply_rope matches."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def signed_sin(sin: torch.Tensor) -> torch.Tensor:
    """sin with its first half negated: rotate_half(x) * sin == roll(x, D/2) * signed_sin(sin)."""
    half = sin.shape[-1] // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, D); cos/sin_signed broadcastable to it: (T, D) or (B, 1, 1, D).

    Equals HF's `x * cos + rotate_half(x) * sin` (negation is exact), in 3 ops instead of 6:
    a roll by D/2 swaps the halves, the sign lives in the precomputed table, and addcmul fuses
    the multiply-add. Decode steps run this twice per layer, so op count is speed here."""
    return torch.addcmul(x * cos, torch.roll(x, x.shape[-1] // 2, dims=-1), sin_signed)
