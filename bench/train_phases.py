"""Where a cpu-preset pretraining step spends its time, phase by phase, and what forcing torch's
kernels to AVX2 does to each phase (the vector unit only, not the memory system: emulated).

The step is the speedrun's own (depth 3, vocab 4096, 16 x 512 tokens, wired induction heads and
their pins, Muon): forward with the fused loss, backward, gradient clipping, the optimizer step
(Muon's Newton-Schulz for the matrices, AdamW for the rest), the pins restored. Each phase is
timed with perf_counter around it, best of N steps after warm-up. The same script runs twice in
subprocesses, once as is and once with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2,
alternating rounds so that a noisy neighbour hits both alike; it prints each phase's time and
share and the ratio between the two.

    python bench/train_phases.py [--rounds 2] [--steps 4] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

PHASES = ("forward", "backward", "clip", "optimizer", "pins")


def one_run(steps: int, threads: int | None) -> dict:
    import torch

    from groundup.model import ModelConfig
    from groundup.train.circuits import Pins, wired_model
    from groundup.train.optim import make_optimizer
    if threads:
        torch.set_num_threads(threads)
    mcfg = ModelConfig.from_depth(3, 4096, max_seq_len=2048, tie_embeddings=True)
    model, _ = wired_model(mcfg, 0, 2)
    model.train()
    opt = make_optimizer(model, 3e-3, 0.1, kind="muon")
    pins = Pins(model)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4096, (16, 512), generator=g)
    y = torch.randint(0, 4096, (16, 512), generator=g)
    best = {p: float("inf") for p in PHASES}
    for i in range(steps + 1):               # the first step warms up (allocations, kernel choice)
        t = [time.perf_counter()]
        loss = model(x, targets=y) / y.numel()
        t.append(time.perf_counter())
        loss.backward()
        t.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        t.append(time.perf_counter())
        opt.step()
        t.append(time.perf_counter())
        pins.restore()
        opt.zero_grad(set_to_none=True)
        t.append(time.perf_counter())
        if i:
            for p, a, b in zip(PHASES, t, t[1:]):
                best[p] = min(best[p], b - a)
    return {"phases": best, "isa": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one_run(a.steps, a.threads)))
        return
    envs = {"native": dict(os.environ),
            "avx2": dict(os.environ, ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")}
    best: dict[str, dict[str, float]] = {k: {p: float("inf") for p in PHASES} for k in envs}
    isa = {}
    for _ in range(a.rounds):
        for name, env in envs.items():
            out = subprocess.run([sys.executable, __file__, "--child", "--steps", str(a.steps),
                                  "--threads", str(a.threads)], env=env, capture_output=True,
                                 text=True, check=True).stdout
            r = json.loads(out.splitlines()[-1])
            isa[name] = r["isa"]
            for p in PHASES:
                best[name][p] = min(best[name][p], r["phases"][p])
    tokens = 16 * 512
    print(f"{'phase':<12}" + "".join(f"{k + ' (' + isa[k] + ')':>24}" for k in envs) + f"{'avx2 / native':>15}")
    for p in PHASES + ("step",):
        vals = {k: (sum(best[k].values()) if p == "step" else best[k][p]) for k in envs}
        tot = {k: sum(best[k].values()) for k in envs}
        print(f"{p:<12}" + "".join(f"{1e3 * vals[k]:>12.0f} ms {100 * vals[k] / tot[k]:>5.0f}%   "
                                   for k in envs) + f"{vals['avx2'] / vals['native']:>12.2f}x")
    print("tokens/s: " + ", ".join(f"{k} {tokens / sum(best[k].values()):,.0f}" for k in envs))


if __name__ == "__main__":
    main()
