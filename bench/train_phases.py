"""Where a cpu-preset training step spends its time, phase by phase, and what forcing torch's
kernels to AVX2 does to each phase (the vector unit only, not the memory system: emulated).

The step is the speedrun's own (depth 3, vocab 4096, wired induction heads and their pins, Muon;
pretraining's 16 x 512 tokens, or fine-tuning's 8 x 2048 with ~20% of the targets counting): forward with the fused loss, backward, gradient clipping, the optimizer step
(Muon's Newton-Schulz for the matrices, AdamW for the rest), the pins restored. Each phase is
timed with perf_counter around it, best of N steps after warm-up. The same script runs twice in
subprocesses, once as is and once with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
MKL_ENABLE_INSTRUCTIONS=AVX2 (MKL's sgemm runs torch's float32 matmuls: without the third it
stays on AVX-512 and the emulation misses most of the step), alternating rounds so that a noisy
neighbour hits both alike; it prints each phase's time and share and the ratio between the two,
and with --profile torch.profiler's table of the ops that take the time.

    python bench/train_phases.py [--stage pretrain|sft] [--rounds 2] [--steps 4] [--threads N] [--profile 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

PHASES = ("forward", "backward", "clip", "optimizer", "pins")
SHAPES = {"pretrain": (16, 512), "sft": (8, 2048)}   # the cpu preset's batch x sequence per step


def one_run(steps: int, threads: int | None, stage: str = "pretrain", profile: int = 0) -> dict:
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
    batch, seq = SHAPES[stage]
    x = torch.randint(0, 4096, (batch, seq), generator=g)
    y = torch.randint(0, 4096, (batch, seq), generator=g)
    if stage == "sft":   # only the assistant's tokens count: spans of 128 making ~20% of each row
        y[(torch.arange(seq) // 128 % 5 != 0).expand(batch, seq)] = -1
    best = {p: float("inf") for p in PHASES}
    for i in range(steps + 1):               # the first step warms up (allocations, kernel choice)
        t = [time.perf_counter()]
        loss = model(x, targets=y) / max(1, int((y >= 0).sum()))
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
    table = ""
    if profile:   # one more step under the profiler: which kernels the time goes to
        from torch.profiler import ProfilerActivity, profile as prof
        with prof(activities=[ProfilerActivity.CPU]) as pr:
            loss = model(x, targets=y) / max(1, int((y >= 0).sum()))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            pins.restore()
            opt.zero_grad(set_to_none=True)
        table = pr.key_averages().table(sort_by="self_cpu_time_total", row_limit=profile)
    return {"phases": best, "isa": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "table": table}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--stage", choices=sorted(SHAPES), default="pretrain",
                    help="pretrain: 16 x 512, every target counts; sft: 8 x 2048, ~20%% count")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="also print torch.profiler's top N ops by self time, one table per ISA")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one_run(a.steps, a.threads, a.stage, a.profile)))
        return
    envs = {"native": dict(os.environ),
            "avx2": dict(os.environ, ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2",
                         MKL_ENABLE_INSTRUCTIONS="AVX2")}   # MKL too: its sgemm does every matmul
    best: dict[str, dict[str, float]] = {k: {p: float("inf") for p in PHASES} for k in envs}
    isa, tables = {}, {}
    for _ in range(a.rounds):
        for name, env in envs.items():
            out = subprocess.run([sys.executable, __file__, "--child", "--steps", str(a.steps),
                                  "--threads", str(a.threads), "--stage", a.stage,
                                  "--profile", str(a.profile)], env=env, capture_output=True,
                                 text=True, check=True).stdout
            r = json.loads(out.splitlines()[-1])
            isa[name] = r["isa"]
            tables[name] = r["table"]
            for p in PHASES:
                best[name][p] = min(best[name][p], r["phases"][p])
    tokens = SHAPES[a.stage][0] * SHAPES[a.stage][1]
    print(f"stage {a.stage}: {SHAPES[a.stage][0]} x {SHAPES[a.stage][1]} tokens, best of {a.rounds} rounds x {a.steps} steps")
    print(f"{'phase':<12}" + "".join(f"{k + ' (' + isa[k] + ')':>24}" for k in envs) + f"{'avx2 / native':>15}")
    for p in PHASES + ("step",):
        vals = {k: (sum(best[k].values()) if p == "step" else best[k][p]) for k in envs}
        tot = {k: sum(best[k].values()) for k in envs}
        print(f"{p:<12}" + "".join(f"{1e3 * vals[k]:>12.0f} ms {100 * vals[k] / tot[k]:>5.0f}%   "
                                   for k in envs) + f"{vals['avx2'] / vals['native']:>12.2f}x")
    print("tokens/s: " + ", ".join(f"{k} {tokens / sum(best[k].values()):,.0f}" for k in envs))
    for name, table in tables.items():
        if table:
            print(f"\n{name} ({isa[name]}): the last round's profiled step, top ops by self time\n{table}")


if __name__ == "__main__":
    main()
