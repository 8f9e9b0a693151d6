"""The two kernels that dominate the cpu preset's training step after the linear layers --
attention and the output head's loss -- against their alternatives, side by side.

    attention   one layer's forward + backward at the cpu preset's shapes (3 heads of 64):
                flash     F.scaled_dot_product_attention on the model's strided q, k, v
                          (views into the fused qkv projection: what the model runs)
                contig    the same with q, k, v made contiguous first
                math      SDPA's math backend (the (T, T) scores held in memory)
    loss        the output head + cross-entropy, forward + backward, 8,192 rows, vocab 4096:
                fusedN    model/loss.py's chunked fused loss with N rows a chunk (256: default)
                plain     the head's logits, then F.cross_entropy (what autograd does alone)

Each variant runs in one process, alternating rounds, best of N; ratios are against the first
variant of each group. `--avx2` holds torch, oneDNN and MKL to AVX2 (the vector unit of an
AVX2 laptop emulated, not its memory or clock).

    python bench/train_kernels.py [--rounds 4] [--avx2] [--shape 8x2048]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def best_of(fns: dict, rounds: int) -> dict:
    best = {k: float("inf") for k in fns}
    for r in range(rounds):
        for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            t = time.perf_counter()
            fns[k]()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shape", default="8x2048", help="attention's batch x positions (pretraining: 16x512)")
    ap.add_argument("--avx2", action="store_true")
    a = ap.parse_args()
    if a.avx2 and os.environ.get("MKL_ENABLE_INSTRUCTIONS") != "AVX2":   # must be set before torch loads
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, **AVX2))
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import groundup.model.loss as loss_mod
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    B, T = map(int, a.shape.split("x"))
    H, D = 3, 64
    qkv0 = torch.randn(B, T, 3 * H, D, generator=g) * 0.5

    def attention(contig: bool = False, math: bool = False) -> torch.Tensor:
        qkv = qkv0.clone().requires_grad_(True)
        q, k, v = qkv.transpose(1, 2).split([H, H, H], dim=1)      # (B, H, T, D) views
        q, k = q * 1.0, k * 1.0                                    # as after RoPE: new, same layout
        if contig:
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        with sdpa_kernel(SDPBackend.MATH if math else SDPBackend.FLASH_ATTENTION):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y.transpose(1, 2).reshape(B, T, H * D).sum().backward()
        return qkv.grad

    N, V, C = 8192, 4096, 192
    h0, w0 = torch.randn(N, C, generator=g), torch.randn(V, C, generator=g) * 0.05
    tgt = torch.randint(0, V, (N,), generator=g)
    default_rows = loss_mod.chunk_rows

    def loss(fused: bool, rows: int | None = None):
        loss_mod.chunk_rows = (lambda vocab: rows) if rows else default_rows
        h, w = h0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
        loss_mod.linear_cross_entropy(h, w, tgt, fused=fused).backward()
        loss_mod.chunk_rows = default_rows
        return h.grad, w.grad

    att = {"flash": attention, "contig": lambda: attention(contig=True), "math": lambda: attention(math=True)}
    ref = attention()
    diffs = {k: float((f() - ref).abs().max()) for k, f in att.items()}
    lossf = {f"fused{n}": (lambda n=n: loss(True, n)) for n in (256, 128, 512, 1024)}
    lossf["plain"] = lambda: loss(False)
    print(f"{torch.backends.cpu.get_cpu_capability()}{' (MKL and oneDNN held to AVX2)' if a.avx2 else ''}, "
          f"{a.threads} threads, best of {a.rounds}, load {os.getloadavg()[0]:.1f}")
    for title, fns, extra in ((f"attention {B} x {T}, 3 heads of 64, forward + backward", att, diffs),
                              (f"head + loss, {N} rows x {V} ids, forward + backward", lossf, {})):
        best = best_of(fns, a.rounds)
        first = next(iter(best.values()))
        print(title)
        for k, v in best.items():
            note = f"   max |grad difference| {extra[k]:.1e}" if k in extra else ""
            print(f"  {k:<10}{1e3 * v:>8.0f} ms {first / v:>6.2f}x{note}")


if __name__ == "__main__":
    main()
