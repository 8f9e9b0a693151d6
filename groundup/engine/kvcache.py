"""The KV cache: every layer's keys and values for every row, allocated once.

Without a cache, generating token t means recomputing attention keys/values for all t-1
earlier tokens: O(T^2) work per sequence. With it, each decode step computes k/v for just the
new token, writes them in place, and attends over what is stored.

Design choices:
- One tensor per k and v, shape (n_layers, max_batch, n_kv_heads, max_len, head_dim), zeroed
  once. Writes are in place; nothing is concatenated or reallocated during generation. Zeros
  (not `empty`) because masked-out slots are still multiplied by a zero attention weight,
  and 0 * NaN from uninitialised memory would be NaN.
- Batch rows are *slots* in llama.cpp's sense. The rows in use are always 0..n-1, so a
  decode step reads the plain slice `k[layer, :n]`: when a sequence finishes, the last row's
  cache is moved into its slot (one copy per finished sequence, not per step).
- `views(n)` hands the model a list of per-layer (k, v) views, memoised, so a decode step
  does no Python-side slicing of its own.
"""

from __future__ import annotations

import torch

from groundup.model.config import ModelConfig


class KVCache:
    def __init__(self, cfg: ModelConfig, max_batch: int, max_len: int, dtype: torch.dtype,
                 device: torch.device | str):
        shape = (cfg.n_layers, max_batch, cfg.n_kv_heads, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_batch, self.max_len = max_batch, max_len
        self._views: dict[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def views(self, start: int, stop: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """per-layer (k, v) of rows [start, stop): each (stop - start, Hkv, max_len, D)"""
        key = (start, stop)
        if key not in self._views:
            self._views[key] = [(self.k[i, start:stop], self.v[i, start:stop]) for i in range(self.k.shape[0])]
        return self._views[key]

    def move_row(self, src: int, dst: int, length: int) -> None:
        """copy the first `length` positions of row src into row dst, in all layers at once"""
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]

    def copy_row_from(self, other: "KVCache", src: int, dst: int, length: int) -> None:
        """copy the first `length` positions of `other`'s row src into this cache's row dst"""
        self.k[:, dst, :, :length] = other.k[:, src, :, :length]
        self.v[:, dst, :, :length] = other.v[:, src, :, :length]

    @property
    def nbytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()
