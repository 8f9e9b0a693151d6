"""What Muon's Newton-Schulz costs on the cpu preset's blocks, and two ways to make it cheaper.

The cpu preset (depth 3, width 192, MLP 512) has 21 Muon blocks a step: per layer q, k, v and o
(192 x 192), gate and up (512 x 192, iterated on their side) and down (192 x 512). This times,
in one process and alternating rounds (best of N):

    per_block   the optimizer's own loop: train/muon.py's orthogonalize, one block at a time
    batched     the same-shape blocks stacked, each iteration two batched fused multiply-adds
                (baddbmm): fewer, larger kernels, the same result to float rounding
    ns3, ns4    per_block with 3 or 4 iterations instead of 5 (a different update)

and prints each one's time and ratio to per_block, and the FLOP rate. `--avx2` holds torch,
oneDNN and MKL to AVX2 (the vector unit of an AVX2 laptop emulated, not its memory or clock).

    python bench/muon_ns.py [--rounds 30] [--threads 2] [--avx2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--avx2", action="store_true")
    a = ap.parse_args()
    if a.avx2 and os.environ.get("MKL_ENABLE_INSTRUCTIONS") != "AVX2":   # must be set before torch loads
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, **AVX2))
    import torch

    from groundup.train.muon import NS_COEFFS, orthogonalize
    torch.set_num_threads(a.threads)
    ca, cb, cc = NS_COEFFS
    g = torch.Generator().manual_seed(0)
    blocks = ([torch.randn(192, 192, generator=g) for _ in range(12)]
              + [torch.randn(512, 192, generator=g) for _ in range(6)]
              + [torch.randn(192, 512, generator=g) for _ in range(3)])

    def batched_ns(X: torch.Tensor, steps: int = 5) -> torch.Tensor:   # X (n, short, long)
        X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
        for _ in range(steps):
            A = X @ X.mT
            X = torch.baddbmm(X, torch.baddbmm(A, A, A, beta=cb, alpha=cc), X, beta=ca)
        return X

    def batched():
        return (batched_ns(torch.stack(blocks[:12])),
                batched_ns(torch.stack([b.T for b in blocks[12:18]] + blocks[18:])))

    fns = {"per_block": lambda: [orthogonalize(b) for b in blocks], "batched": batched,
           "ns4": lambda: [orthogonalize(b, 4) for b in blocks],
           "ns3": lambda: [orthogonalize(b, 3) for b in blocks]}
    one, (sq, wide) = fns["per_block"](), batched()
    diff = max([float((one[i] - sq[i]).abs().max()) for i in range(12)]
               + [float((one[12 + i].T - wide[i]).abs().max()) for i in range(6)]
               + [float((one[18 + i] - wide[6 + i]).abs().max()) for i in range(3)])
    best = {k: float("inf") for k in fns}
    for r in range(a.rounds):
        for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            t = time.perf_counter()
            fns[k]()
            best[k] = min(best[k], time.perf_counter() - t)
    flops = sum(2 * 5 * (2 * s * s * l + s ** 3) for s, l in [(192, 192)] * 12 + [(192, 512)] * 9)
    print(f"{torch.backends.cpu.get_cpu_capability()}{' (MKL and oneDNN held to AVX2)' if a.avx2 else ''}, "
          f"{a.threads} threads, best of {a.rounds}, load {os.getloadavg()[0]:.1f}; "
          f"batched vs per_block: max |difference| {diff:.1e}")
    for k, v in best.items():
        steps = {"ns4": 4, "ns3": 3}.get(k, 5)
        print(f"{k:<10}{1e3 * v:>8.1f} ms {best['per_block'] / v:>6.2f}x  "
              f"{flops * steps / 5 / v / 1e9:>5.0f} GFLOP/s")


if __name__ == "__main__":
    main()
