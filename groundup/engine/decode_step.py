"""The decode step, written lean: one new token per row through the model in as few torch ops
as the arithmetic allows.

    token ids (B,) --embed--> x (B, C) --n_layers x [norm, qkv, rope, cache write, attend, o,
                                                     norm, gate_up, silu*mul, down]--> logits (B, V)

The model's `forward` (groundup/model/llama.py) serves training, prefill and decode alike, and
reads as the architecture; run eagerly for one token it dispatches ~170 torch operations per
layer (F.rms_norm alone is ~24 on CPU in torch 2.13; a `roll` is 11; each view, narrow and
split a few). For a small model that dispatch, not the arithmetic, is the decode step: the 10M
model's step was ~1,100 dispatched ops for ~0.7 ms of matmuls. This module does the same
arithmetic for T == 1 with the same weights (the model's own modules: PackedLinear's kernels and
layouts apply), in ~45 dispatched ops per layer. Same values to float rounding (summation order
differs: tests/engine/test_decode_step.py compares logits and greedy tokens with `forward`).

What it does differently, each a few ops fewer:
- RMSNorm as x / hypot(||x||, sqrt(C*eps)) * (w*sqrt(C)): rsqrt(mean(x^2) + eps) rewritten with
  one vector norm and one hypot -- 4 ops instead of ~24 (w*sqrt(C) is precomputed).
- RoPE on q and k together as x*cos + flip(x halves)*signed_sin: a flip of the (2, D/2) halves
  is `roll(x, D/2)` in one op instead of 11. The position's cos/sin rows are looked up once per
  step, not once per layer.
- The residual stream is one (B, C) tensor added to in place; no (B, T, ...) axes, no module
  __call__ hooks, no per-call checks of cases a decode step never meets.

Not used for: several tokens per row (prefill), Qwen3's per-head q/k norms, dtypes other than
float32 (HF rounds bf16 norms in an order this rewrite does not keep), and torch.compile
(inductor fuses the model's own forward into fewer kernels than this). `LeanDecode.supports`
says which models it takes; the engine falls back to `forward` for the rest.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from groundup.engine.cpu_linear import PackedLinear
from groundup.model.llama import KV, Attention, Transformer


class LeanDecode:
    def __init__(self, model: Transformer):
        cfg = model.config
        self.model = model
        self.H, self.Hkv, self.D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.G = self.H // self.Hkv
        self.C = cfg.dim
        # per norm: (w * sqrt(C), sqrt(C * eps)) -- see _norm; recomputed if a weight changes
        self._norms: dict[int, tuple[int, torch.Tensor, torch.Tensor]] = {}
        self._rows: dict[int, torch.Tensor] = {}                 # B -> arange(B), for ragged cache writes

    @staticmethod
    def _linear(lin: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
        """x (B, in) -> (B, out): PackedLinear.rows (one dispatched op) where the engine packed the
        model, F.linear where it did not (a borrowed model)"""
        return lin.rows(x) if isinstance(lin, PackedLinear) else F.linear(x, lin.weight, lin.bias)

    @staticmethod
    def supports(model: Transformer) -> bool:
        p = next(model.parameters())
        return p.dtype == torch.float32 and not model.config.qk_norm

    def _norm(self, norm: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """RMSNorm of x (B, C): x * rsqrt(mean(x^2) + eps) * w == x / sqrt(||x||^2 + C*eps) * (w*sqrt(C))"""
        w = norm.weight
        got = self._norms.get(id(norm))
        if got is None or got[0] != w._version:
            got = (w._version, w.detach() * math.sqrt(self.C),
                   torch.tensor(math.sqrt(self.C * norm.eps), dtype=x.dtype, device=x.device))
            self._norms[id(norm)] = got
        _, ws, ceps = got
        return (x / torch.hypot(torch.linalg.vector_norm(x, dim=-1, keepdim=True), ceps)).mul_(ws)

    @torch.inference_mode()
    def __call__(self, idx: torch.Tensor, cache: list[KV], pos: int | torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, 1) -> logits (B, 1, V) float32, writing each layer's k/v at `pos` like
        Transformer.forward: pos an int (B == 1, no mask) or a (B,) tensor with the step's
        (B, 1, 1, L) additive or boolean mask."""
        m = self.model
        B = idx.shape[0]
        H, Hkv, D, G = self.H, self.Hkv, self.D, self.G
        Hqk = H + Hkv
        x = m.embed_tokens(idx.view(B))                                    # (B, C), a fresh tensor
        if isinstance(pos, int):
            cos, sin = m.rope(pos + 1, x.dtype, x.device)
            cos, sin = cos[pos], sin[pos]                                  # (D,): shared by every row
            L = pos + 1
        else:
            L = int(mask.shape[-1])
            cos, sin = m.rope(L, x.dtype, x.device)
            cos, sin = cos[pos].view(B, 1, D), sin[pos].view(B, 1, D)      # (B, 1, D)
            rows = self._rows.get(B)
            if rows is None:
                rows = self._rows[B] = torch.arange(B, device=x.device)
        for layer, (kc, vc) in zip(m.layers, cache):
            a = layer.self_attn
            qkv = self._linear(a.qkv_proj, self._norm(layer.input_layernorm, x))        # (B, (H + 2Hkv) * D)
            qk = qkv[:, :Hqk * D].view(B, Hqk, D)
            # rope: roll(x, D/2) is a swap of the two halves, i.e. a flip of the (2, D/2) view
            qk = torch.addcmul(qk * cos, qk.view(B, Hqk, 2, D // 2).flip(2).view(B, Hqk, D), sin)
            k = qk[:, H:]                                                  # (B, Hkv, D)
            v = qkv[:, Hqk * D:].view(B, Hkv, D)
            q = qk[:, :H].view(B, Hkv, G, D)                               # a group's heads as query rows
            if isinstance(pos, int):
                kc.select(2, pos).copy_(k)                                 # kc (1, Hkv, T_max, D)
                vc.select(2, pos).copy_(v)
                y = F.scaled_dot_product_attention(q, kc[:, :, :L], vc[:, :, :L])   # (1, Hkv, G, D)
            else:
                kc[rows, :, pos] = k
                vc[rows, :, pos] = v
                y = self._ragged_attend(q, kc[:, :, :L], vc[:, :, :L], mask.view(B, 1, 1, L))
            x += self._linear(a.o_proj, y.reshape(B, H * D))
            mlp = layer.mlp
            gu = self._linear(mlp.gate_up_proj, self._norm(layer.post_attention_layernorm, x))     # (B, 2F)
            gate, up = gu.chunk(2, dim=-1)
            x += self._linear(mlp.down_proj, F.silu(gate).mul_(up))
        return self._linear(m.lm_head, self._norm(m.norm, x)).float().view(B, 1, -1)

    def _ragged_attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """q (B, Hkv, G, D), k/v (B, Hkv, L, D), mask (B, 1, 1, L): the kernel the model's
        forward picks for this CPU (Attention.MANUAL_RAGGED_CPU: written out on AVX2, SDPA elsewhere)"""
        if Attention.MANUAL_RAGGED_CPU and q.device.type == "cpu":
            s = torch.matmul(q, k.transpose(-1, -2)).mul_(self.D ** -0.5)            # (B, Hkv, G, L)
            s = s.masked_fill_(~mask, float("-inf")) if mask.dtype == torch.bool else s.add_(mask)
            return torch.matmul(s.softmax(-1), v)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
