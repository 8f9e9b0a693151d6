"""The cpu preset's training step under candidate settings, side by side: tokens/s and the ratio
to the anchor (the first variant), alternating rounds so that a noisy neighbour hits all alike.

Each variant runs in its own subprocess (thread and allocator settings only take effect at start):
the speedrun's own step (depth 3, vocab 4096, wired induction heads and their pins, Muon, the
fused loss) timed end to end, best of N steps after a warm-up, for pretraining (16 x 512, every
target counts) or fine-tuning (8 x 2048, ~20% count). `--avx2` runs every variant with torch,
oneDNN and MKL held to AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS):
the vector unit of an AVX2 laptop emulated, not its caches, memory or clock.

    python bench/train_throughput.py [--stage pretrain|sft] [--avx2] [--rounds 3] [--steps 3]
                                     [--variants anchor,ns3,...]

Variants (name: what changes against the anchor, which is today's code with 2 threads):
    ns3, ns4        Muon's Newton-Schulz with 3 or 4 iterations instead of 5 (changes the math)
    threads1        torch.set_num_threads(1)
    interop1        torch.set_num_interop_threads(1) as well as 2 threads
    active          OMP_WAIT_POLICY=active (threads spin between parallel regions)
    chunkN          the fused loss's chunk of N rows (default: 256 at vocab 4096)
    rows1024        fine-tuning's tokens in rows of 1024, twice as many (changes what is learned:
                    attention's cost grows with the row's length)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SHAPES = {"pretrain": (16, 512), "sft": (8, 2048)}   # the cpu preset's batch x sequence per step
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
ENV = {"active": {"OMP_WAIT_POLICY": "active"}}


def one_run(variant: str, stage: str, steps: int) -> dict:
    import torch

    import groundup.model.loss as loss_mod
    from groundup.model import ModelConfig
    from groundup.train.circuits import Pins, wired_model
    from groundup.train.optim import make_optimizer
    torch.set_num_threads(1 if variant == "threads1" else 2)
    if variant == "interop1":
        torch.set_num_interop_threads(1)
    if variant.startswith("chunk"):
        rows = int(variant[5:])
        loss_mod.chunk_rows = lambda vocab: rows
    mcfg = ModelConfig.from_depth(3, 4096, max_seq_len=2048, tie_embeddings=True)
    model, _ = wired_model(mcfg, 0, 2)
    model.train()
    opt = make_optimizer(model, 3e-3, 0.1, kind="muon")
    if variant in ("ns3", "ns4"):
        for g in opt.param_groups:
            g["ns_steps"] = int(variant[2])
    step_opt = opt.step
    pins = Pins(model)
    g = torch.Generator().manual_seed(0)
    batch, seq = SHAPES[stage]
    if variant == "rows1024":
        batch, seq = batch * seq // 1024, 1024
    x = torch.randint(0, 4096, (batch, seq), generator=g)
    y = torch.randint(0, 4096, (batch, seq), generator=g)
    if stage == "sft":   # only the assistant's tokens count: spans of 128 making ~20% of each row
        y[(torch.arange(seq) // 128 % 5 != 0).expand(batch, seq)] = -1
    n = max(1, int((y >= 0).sum()))
    best, best_opt = float("inf"), float("inf")
    for i in range(steps + 1):               # the first step warms up
        t0 = time.perf_counter()
        (model(x, targets=y) / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        t1 = time.perf_counter()
        step_opt()
        t2 = time.perf_counter()
        pins.restore()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if i:
            best, best_opt = min(best, t3 - t0), min(best_opt, t2 - t1)
    return {"step": best, "optimizer": best_opt, "isa": torch.backends.cpu.get_cpu_capability()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage", choices=sorted(SHAPES), default="pretrain")
    ap.add_argument("--avx2", action="store_true", help="hold torch, oneDNN and MKL to AVX2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--variants", default="anchor,ns3,threads1,active",
                    help="comma-separated; the first is the anchor the ratios are against")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one_run(a.child, a.stage, a.steps)))
        return
    names = a.variants.split(",")
    best = {k: {"step": float("inf"), "optimizer": float("inf")} for k in names}
    isa = ""
    base = dict(os.environ, **(AVX2 if a.avx2 else {}))
    base.setdefault("OMP_WAIT_POLICY", "passive")
    for r in range(a.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):   # alternate the order too
            env = dict(base, **ENV.get(name, {}))
            out = subprocess.run([sys.executable, __file__, "--child", name, "--stage", a.stage,
                                  "--steps", str(a.steps)], env=env, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"variant {name} failed:\n{out.stderr[-2000:]}")
            res = json.loads(out.stdout.splitlines()[-1])
            isa = res["isa"]
            for k in ("step", "optimizer"):
                best[name][k] = min(best[name][k], res[k])
    tokens = SHAPES[a.stage][0] * SHAPES[a.stage][1]
    anchor = best[names[0]]["step"]
    print(f"stage {a.stage} ({tokens} tokens a step), {isa}{' (MKL and oneDNN held to AVX2)' if a.avx2 else ''}, "
          f"best of {a.rounds} rounds x {a.steps} steps, load {os.getloadavg()[0]:.1f}")
    print(f"{'variant':<12}{'step':>10}{'optimizer':>12}{'tokens/s':>10}{'vs ' + names[0]:>12}")
    for k in names:
        s = best[k]
        print(f"{k:<12}{1e3 * s['step']:>8.0f} ms{1e3 * s['optimizer']:>9.0f} ms{tokens / s['step']:>10,.0f}"
              f"{anchor / s['step']:>11.2f}x")


if __name__ == "__main__":
    main()
