"""The Llama-family decoder-only transformer (Llama 2/3, Qwen2, Qwen3), from scratch.

    tokens -> embedding -> n_layers x [ x + Attn(RMSNorm(x)) ; x + SwiGLU(RMSNorm(x)) ] -> RMSNorm -> head

Design choices:
- Module names mirror Hugging Face's (`layers.3.self_attn.o_proj`, `mlp.down_proj`, ...), so a
  checkpoint's tensor names map to ours by dropping a `model.` prefix -- except two fusions:
  q/k/v are one `qkv_proj` and gate/up are one `gate_up_proj` (nanoGPT's c_attn). One matmul
  instead of three reads the same weights with one kernel launch; at batch 1 a decode step is
  launch- and bandwidth-bound, so fewer, larger matmuls are measurably faster. checkpoint.py
  stacks HF's tensors into them on load and splits them on save.
- Attention is `F.scaled_dot_product_attention` (fused kernels on CPU and GPU). Grouped-query
  attention (n_kv_heads < n_heads) never copies k/v: prefill uses SDPA's `enable_gqa`, and
  decode folds the query heads of a group into SDPA's "time" axis (one query position, so no
  causal mask is needed and the group's heads share one k/v head exactly).
- One `forward` serves training and inference. Training: `model(idx)` -> (B, T, V) float32
  logits, no cache. Inference: the engine passes preallocated per-layer cache tensors and the
  position(s) to write at; the model writes k/v in place and reads back only the prefix in use.
  `pos` is an int when every row is at the same position (prefill; batch-1 decode, the hot path,
  which then needs no mask at all) or a (B,) tensor when rows are at different positions
  (batched / continuous-batching decode; the engine builds the (B, 1, 1, L) mask once per step
  and every layer shares it).
- RMSNorm follows HF's rounding (normalise in float32, cast back, then scale) so bf16 matches
  transformers too.
- Qwen2 adds a bias to q/k/v; Qwen3 RMS-normalises each head's q and k before RoPE.
"""

from __future__ import annotations

import functools
import math
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F

from groundup.errors import UserError
from groundup.model.config import ModelConfig
from groundup.model.loss import linear_cross_entropy
from groundup.model.rope import apply_rope, inv_frequencies, rope_table, signed_sin

KV = tuple[torch.Tensor, torch.Tensor]   # one layer's cache: k, v each (B, n_kv_heads, T_max, head_dim)


is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)


def compile_model(model: nn.Module, **options) -> nn.Module:
    """torch.compile(model), refused in one line where it cannot build: inductor writes C++ into
    the temporary directory and hands its path to the compiler unquoted (torch 2.13), so a
    TMPDIR with a space or a quote breaks the build deep inside torch."""
    tmp = tempfile.gettempdir()
    if any(c.isspace() or c in "'\"" for c in tmp):
        raise UserError(f"torch.compile cannot build in the temporary directory {tmp!r}: torch passes "
                        "its path to the C++ compiler unquoted -- set TMPDIR to a directory whose path "
                        "has no spaces or quotes, or run without --compile")
    return torch.compile(model, **options)


@functools.lru_cache(maxsize=64)
def _arange(n: int, device: torch.device) -> torch.Tensor:
    """0..n-1 as a tensor, made once per (n, device): every layer of every batched decode step uses it"""
    return torch.arange(n, device=device)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            # torch's fused op: the same bits as the lines below in float32, and faster in
            # decode and in training alike (the timings: docs/lab/2026-12-03-measurements-behind-the-code.md)
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        # HF's order: normalise in float32, round to the input dtype, *then* scale by the weight
        # (F.rms_norm would scale before rounding: a different bf16 result)
        xf = x.float()
        return self.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


class Attention(nn.Module):
    # The ragged decode step's attention (several rows, one query each, a mask per row) on CPU:
    # written out as softmax(q.k^T / sqrt(D) + mask).v where the CPU's best vector unit is AVX2,
    # SDPA elsewhere -- each is the faster one there (bench/engine.py; the timings:
    # docs/lab/2026-12-03-measurements-behind-the-code.md). A compiled forward takes the
    # written-out form everywhere: inductor fuses its scale, mask and softmax.
    MANUAL_RAGGED_CPU = torch.backends.cpu.get_cpu_capability() == "AVX2"

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.group = cfg.n_heads // cfg.n_kv_heads
        # rows: H*D of q, then Hkv*D of k, then Hkv*D of v (HF's q_proj, k_proj, v_proj stacked)
        self.qkv_proj = nn.Linear(cfg.dim, (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv: KV | None = None,
                pos: int | torch.Tensor = 0, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        H, Hkv = self.n_heads, self.n_kv_heads
        qkv = self.qkv_proj(x).view(B, T, H + 2 * Hkv, self.head_dim)      # (B, T, H + 2Hkv, D)
        qk, v = qkv.split([H + Hkv, Hkv], dim=2)
        v = v.transpose(1, 2)                                              # (B, Hkv, T, D)
        if self.q_norm is None:   # rotate q and k together: one set of RoPE ops, not two
            q, k = apply_rope(qk.transpose(1, 2), cos, sin).split([H, Hkv], dim=1)  # (B, H|Hkv, T, D)
        else:                     # Qwen3: each head's q and k are RMS-normalised before RoPE
            q, k = qk.split([H, Hkv], dim=2)
            q = apply_rope(self.q_norm(q).transpose(1, 2), cos, sin)       # (B, H, T, D)
            k = apply_rope(self.k_norm(k).transpose(1, 2), cos, sin)       # (B, Hkv, T, D)
        if q.dtype != v.dtype:           # under autocast v may be bf16 while cos/sin are fp32
            q, k = q.to(v.dtype), k.to(v.dtype)

        if kv is None:                                      # training / plain forward
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.group > 1)
        else:
            kc, vc = kv
            if isinstance(pos, int):                        # all rows at the same position
                kc.narrow(2, pos, T).copy_(k)               # in-place write into the preallocated cache
                vc.narrow(2, pos, T).copy_(v)
                if T == 1:                                  # decode: attend to the whole prefix
                    y = self._decode_attend(q, kc.narrow(2, 0, pos + 1), vc.narrow(2, 0, pos + 1), mask)
                elif pos == 0:                              # prefill from scratch: the new k/v are all there is
                    y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.group > 1)
                else:                                       # prefill continuing after a cached prefix
                    L = pos + T
                    causal = torch.ones(T, L, dtype=torch.bool, device=x.device).tril(diagonal=pos)
                    y = F.scaled_dot_product_attention(q, kc[:, :, :L], vc[:, :, :L], attn_mask=causal,
                                                       enable_gqa=self.group > 1)
            else:                                           # ragged decode: row b is at position pos[b]
                # (a traced graph makes its own arange: torch.compile does not trace through a cache)
                rows = torch.arange(B, device=x.device) if is_compiling() else _arange(B, x.device)
                kc[rows, :, pos] = k[:, :, 0]               # (B, Hkv, D) scattered to each row's slot
                vc[rows, :, pos] = v[:, :, 0]
                L = mask.shape[-1]                          # the longest row's length
                y = self._decode_attend(q, kc.narrow(2, 0, L), vc.narrow(2, 0, L), mask)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)
        return self.o_proj(y)

    def _decode_attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       mask: torch.Tensor | None) -> torch.Tensor:
        """One query position per row. q (B, H, 1, D); k, v (B, Hkv, L, D); mask (B, 1, 1, L) or None."""
        B = q.shape[0]
        # the `group` query heads that share a kv head become `group` query rows against it
        qg = q.reshape(B, self.n_kv_heads, self.group, self.head_dim)               # (B, Hkv, G, D)
        if mask is not None and q.device.type == "cpu" and (self.MANUAL_RAGGED_CPU or is_compiling()):
            s = torch.matmul(qg, k.transpose(-1, -2)).mul_(self.head_dim ** -0.5)   # (B, Hkv, G, L)
            s = s.masked_fill_(~mask, float("-inf")) if mask.dtype == torch.bool else s.add_(mask)
            y = torch.matmul(s.float().softmax(-1).to(v.dtype), v)                  # (B, Hkv, G, D)
        else:
            y = F.scaled_dot_product_attention(qg, k, v, attn_mask=mask)           # (B, Hkv, G, D)
        return y.reshape(B, self.n_heads, 1, self.head_dim)   # a view on CPU; CUDA kernels may return it strided


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        # rows: ffn_dim of gate, then ffn_dim of up (HF's gate_proj, up_proj stacked)
        self.gate_up_proj = nn.Linear(cfg.dim, 2 * cfg.ffn_dim, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)                   # (B, T, F) each
        return self.down_proj(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, kv=None, pos=0, mask=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, kv, pos, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        # RoPE tables are derived, not learned: plain attributes (not buffers) so they are never
        # in a state_dict and are rebuilt on the right device after loading from the meta device.
        self._rope: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------ weights
    @torch.no_grad()
    def init_weights(self) -> None:
        """GPT-2-style init, deterministic given torch's seed: N(0, 0.02) everywhere, the two
        projections that write into the residual stream scaled down by sqrt(2 * n_layers) so the
        stream's variance does not grow with depth; norms start at 1, biases at 0."""
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                p.normal_(0.0, std / math.sqrt(2 * self.config.n_layers))
            else:
                p.normal_(0.0, std)

    def num_params(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())     # parameters() yields a tied tensor once
        if exclude_embeddings:
            n -= self.embed_tokens.weight.numel()
        return n

    def rope(self, length: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, signed sin (>= length, head_dim) for this dtype/device; grown by doubling when needed."""
        key = (dtype, device)
        if key not in self._rope or self._rope[key][0].shape[0] < length:
            n = max(length, 2 * self._rope[key][0].shape[0] if key in self._rope else 256)
            cos, sin = rope_table(inv_frequencies(self.config).to(device), n)
            self._rope[key] = (cos.to(dtype), signed_sin(sin).to(dtype))
        return self._rope[key]

    # ------------------------------------------------------------------ forward
    def forward(self, idx: torch.Tensor, cache: list[KV] | None = None, pos: int | torch.Tensor = 0,
                mask: torch.Tensor | None = None, last_only: bool = False,
                select: torch.Tensor | None = None, targets: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) token ids -> logits (B, T, V) float32 ((B, 1, V) with last_only).

        targets: (B, T) ids -> instead of logits, the summed cross-entropy (nats, a float32
        scalar) over the targets >= 0, with the output head fused into the loss (loss.py: the
        (B, T, V) logits are never held; training's path).

        select: a boolean (B, T) -- logits (N, V) for its N true positions only, in row order
        (evaluation: fine-tuning's validation scores the assistant's tokens only, 12% of the
        cpu preset's rows; `targets=` drops the uncounted positions the same way).

        cache: per-layer (k, v) tensors (B, Hkv, T_max, D) to write this call's k/v into.
        pos: where idx starts -- an int shared by all rows, or a (B,) tensor (then T == 1 and
        `mask` (B, 1, 1, L), boolean or additive, says which of the first L cache positions each
        row may attend to).
        """
        B, T = idx.shape
        x = self.embed_tokens(idx)                                     # (B, T, C)
        if isinstance(pos, int):
            cos, sin = self.rope(pos + T, x.dtype, x.device)
            cos, sin = cos[pos:pos + T], sin[pos:pos + T]              # (T, D)
        else:
            if mask is None:   # the engine passes one per step; build it for other callers
                L = int(pos.max()) + 1
                mask = (torch.arange(L, device=x.device)[None, :] <= pos[:, None]).view(B, 1, 1, L)
            cos, sin = self.rope(int(mask.shape[-1]), x.dtype, x.device)
            cos, sin = cos[pos].view(B, 1, 1, -1), sin[pos].view(B, 1, 1, -1)   # (B, 1, 1, D)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, None if cache is None else cache[i], pos, mask)
        if targets is not None:
            return linear_cross_entropy(self.norm(x), self.lm_head.weight, targets)
        if last_only:
            x = x[:, -1:, :]
        elif select is not None:
            x = x[select]                                              # (N, C)
        return self.lm_head(self.norm(x)).float()                      # (B, T, V)
