"""Our engine against llama.cpp, side by side: the same random-weight model, the same dtype.

    python bench/vs_llamacpp.py [--size 10m|100m|all] [--tokens 200] [--streams 16] [--rounds 3]
                                [--threads 2] [--compile] [--forward]

For each size (bench/serve.py's models: ~10M and ~100M parameters, random weights, float32):
  1. export it with our GGUF writer (groundup/model/gguf_export.py) and load that file in
     llama.cpp (llama-cpp-python, a bench peer: `pip install llama-cpp-python` builds it from
     source in 10+ minutes; never a test or runtime dependency);
  2. greedy tokens: the same 32-token prompt, 200 tokens, in both -- how many agree;
  3. tokens/s, prompt processing included, 200 tokens after a 32-token prompt, greedy, EOS
     ignored on both sides: at batch 1, and aggregate over 16 sequences decoded together (ours:
     `Engine.generate_batch`, the Batch that `groundup serve`'s scheduler steps; llama.cpp: one
     `llama_decode` per step over a batch holding one token of each sequence, as llama-server
     does). Alternating rounds -- ours b1, theirs b1, ours b16, theirs b16, again -- best of
     each, so a busy neighbour on a shared machine hits both sides alike; the ratios are the
     result, the absolute rates move with the machine's load.

Both sides drive their engine from Python the same way: one call per step, greedy sampling as
an argmax over the step's logits (numpy for llama.cpp: its C sampler chain would add per-token
work ours does not do). Threads: torch.set_num_threads(N) and llama.cpp's n_threads = N;
llama.cpp runs in a child process (see _llama_worker), timed there. Both sides use OpenMP
(torch's libgomp; llama.cpp's build here links the system's), so OMP_WAIT_POLICY applies to
both: on a machine with more runnable threads than cores, the default (spin, then sleep) lets
a waiting thread burn the core its partner needs -- `OMP_WAIT_POLICY=passive` for both sides
measured a loaded 2-core box far more steadily (docs/lab/2026-12-03-serve-bench.md).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from serve import SIZES, make_model  # bench/serve.py: the same models

GOALS = {"10m": (0.55, None), "100m": (0.8, 1.0)}     # (batch 1, 16 streams) as a fraction of llama.cpp


class LlamaCpp:
    """A GGUF file in llama.cpp through its C API (llama-cpp-python's ctypes bindings): one
    context per batch size, greedy decoding of several sequences at once."""

    def __init__(self, path: Path, threads: int, streams: int, ctx_per_seq: int):
        import llama_cpp as L
        self.L = L
        L.llama_backend_init()
        self._quiet = L.llama_log_callback(lambda *a: None)     # (kept: C holds on to it)
        L.llama_log_set(self._quiet, ctypes.c_void_p(0))
        self.model = L.llama_model_load_from_file(str(path).encode(), L.llama_model_default_params())
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))
        self.ctxs, self.batches = {}, {}
        for n in sorted({1, streams}):
            p = L.llama_context_default_params()
            p.n_ctx = n * ctx_per_seq
            p.n_batch = p.n_ubatch = max(512, n * 64)
            p.n_seq_max = n
            p.n_threads = p.n_threads_batch = threads
            p.no_perf = True
            self.ctxs[n] = L.llama_init_from_model(self.model, p)
            self.batches[n] = L.llama_batch_init(p.n_batch, 0, 1)

    def _decode(self, ctx, batch, items: list[tuple[int, int, int, bool]]) -> np.ndarray:
        """items: (token, position, sequence, wants logits) -> logits (rows wanted, V) float32"""
        for k, (tok, pos, seq, want) in enumerate(items):
            batch.token[k], batch.pos[k], batch.n_seq_id[k] = tok, pos, 1
            batch.seq_id[k][0], batch.logits[k] = seq, want
        batch.n_tokens = len(items)
        if self.L.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        rows = sum(w for *_, w in items)
        return np.ctypeslib.as_array(self.L.llama_get_logits(ctx), shape=(rows, self.n_vocab))

    def generate(self, prompts: list[list[int]], n: int) -> list[list[int]]:
        """greedy: n tokens for each prompt, all decoded together (one llama_decode per step)"""
        ctx, batch = self.ctxs[len(prompts)], self.batches[len(prompts)]
        self.L.llama_memory_clear(self.L.llama_get_memory(ctx), True)
        items = [(t, i, s, i == len(p) - 1) for s, p in enumerate(prompts) for i, t in enumerate(p)]
        nxt = self._decode(ctx, batch, items).argmax(-1).tolist()
        out = [[t] for t in nxt]
        for step in range(n - 1):
            items = [(t, len(p) + step, s, True) for s, (p, t) in enumerate(zip(prompts, nxt))]
            nxt = self._decode(ctx, batch, items).argmax(-1).tolist()
            for o, t in zip(out, nxt):
                o.append(t)
        return out


def _llama_worker(conn, path: str, threads: int, streams: int, ctx_per_seq: int) -> None:
    """llama.cpp in a process of its own: its OpenMP runtime (the system's libgomp) and torch's
    (the wheel's own copy), loaded in one process together with inductor's compiled kernels,
    crashed it ("double free or corruption"). Answers (prompts, n) with (tokens, seconds)."""
    llm = LlamaCpp(Path(path), threads, streams, ctx_per_seq)
    conn.send("ready")
    while (job := conn.recv()) is not None:
        t = time.perf_counter()
        out = llm.generate(*job)
        conn.send((out, time.perf_counter() - t))


class LlamaCppProcess:
    def __init__(self, path: Path, threads: int, streams: int, ctx_per_seq: int):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_llama_worker, args=(child, str(path), threads, streams, ctx_per_seq),
                                daemon=True)
        self.proc.start()
        if self.conn.recv() != "ready":
            raise RuntimeError("llama.cpp did not start")

    def generate(self, prompts: list[list[int]], n: int) -> tuple[list[list[int]], float]:
        self.conn.send((prompts, n))
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(timeout=30)


def agreement(a: list[int], b: list[int]) -> int:
    """how many leading tokens two greedy runs share"""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def bench_size(size: str, args) -> dict:
    from groundup.engine import SamplingParams, load_engine
    from groundup.model.gguf_export import export_gguf

    n, S = args.tokens, args.streams
    with tempfile.TemporaryDirectory(prefix="bench-llamacpp-") as tmp:
        d = Path(args.models or tmp) / size
        if not (d / "config.json").is_file():
            make_model(size, d)
        vocab = json.loads((d / "config.json").read_text())["vocab_size"]
        export_gguf(d, Path(tmp) / "model.gguf")
        theirs = LlamaCppProcess(Path(tmp) / "model.gguf", args.threads, S, args.prompt + n + 8)
        engines = {"ours": load_engine(d, dtype="float32", device="cpu")}
        if args.forward:       # the same weights decoding through the model's forward, not the lean step
            engines["ours, forward"] = load_engine(d, dtype="float32", device="cpu", lean=False)
        if args.compile:       # the same weights through torch.compile, its graphs built up front
            engines["ours, compiled"] = load_engine(d, dtype="float32", device="cpu", compile=True)
    compile_s = engines["ours, compiled"].warm_up(batched=True) if args.compile else 0.0
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(2, vocab, (args.prompt,), generator=g).tolist() for _ in range(S)]
    params = SamplingParams(max_new_tokens=n)

    def ours(eng, k: int) -> tuple[list[list[int]], float]:
        t = time.perf_counter()
        if k == 1:
            out = [eng.generate(prompts[0], params).token_ids]
        else:
            out = [r.token_ids for r in eng.generate_batch(prompts[:k], params)]
        return out, time.perf_counter() - t

    runs = {}
    for name, eng in engines.items():
        eng.eos_ids = ()                               # llama.cpp's loop does not stop at EOS either
        runs[(name, 1)] = functools.partial(ours, eng, 1)
        runs[(name, S)] = functools.partial(ours, eng, S)
    runs[("llama.cpp", 1)] = lambda: theirs.generate(prompts[:1], n)
    runs[("llama.cpp", S)] = lambda: theirs.generate(prompts, n)
    out = {key: fn()[0] for key, fn in runs.items()}      # the first runs: warm-up, and the tokens compared
    from groundup.engine.cpu_linear import multi_row_kernels, one_row_kernels
    res = {"size": size, "params": sum(p.numel() for p in engines["ours"].model.parameters()),
           "kernels": (one_row_kernels(engines["ours"].model), multi_row_kernels(engines["ours"].model)),
           "compile_s": compile_s, "engines": list(engines),
           "same_b1": agreement(out[("ours", 1)][0], out[("llama.cpp", 1)][0]),
           "same_bS": [agreement(x, y) for x, y in zip(out[("ours", S)], out[("llama.cpp", S)])]}
    best: dict[tuple, float] = {}
    names = [*engines, "llama.cpp"]
    for r in range(args.rounds):             # alternating rounds: b1 of each engine, then S of each,
        # the order rotated each round: whichever engine runs right after another's run meets
        # the state it leaves (caches, a neighbour's burst) -- not always the same one
        order = names[r % len(names):] + names[:r % len(names)]
        for key in [(name, b) for b in (1, S) for name in order]:
            tokens, seconds = runs[key]()
            best[key] = max(best.get(key, 0.0), sum(len(o) for o in tokens) / seconds)
    theirs.close()
    res["rates"] = best
    return res


def report(r: dict, S: int, n: int) -> None:
    g1, gS = GOALS[r["size"]]
    rate = r["rates"]
    print(f"\n[{r['size']}] params={r['params'] / 1e6:.1f}M"
          + (f"  (compiling took {r['compile_s']:.0f}s, not counted)" if r["compile_s"] else ""))
    print(f"  our kernels (timed at load): one row {r['kernels'][0]}, several rows {r['kernels'][1]}")
    print(f"  greedy tokens, batch 1: the first {r['same_b1']} of {n} identical; {S} sequences: "
          f"{sum(x == n for x in r['same_bS'])}/{S} identical throughout, "
          f"median agreement {sorted(r['same_bS'])[S // 2]} tokens, shortest {min(r['same_bS'])}")
    for b, goal in ((1, g1), (S, gS)):
        t = rate[("llama.cpp", b)]
        print(f"  {'batch 1' if b == 1 else f'{S} sequences'}: llama.cpp {t:8.1f} tok/s"
              + ("" if b == 1 else " aggregate"))
        for name in r["engines"]:
            o = rate[(name, b)]
            print(f"    {name:15s} {o:8.1f} tok/s   ratio {o / t:5.2f}x" + (f"  (goal >= {goal}x)" if goal else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="all", choices=[*sorted(SIZES), "all"])
    ap.add_argument("--tokens", type=int, default=200, help="tokens generated per sequence (default 200)")
    ap.add_argument("--prompt", type=int, default=32, help="prompt tokens (default 32)")
    ap.add_argument("--streams", type=int, default=16, help="sequences decoded together (default 16)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="our engine with torch.compile too")
    ap.add_argument("--forward", action="store_true",
                    help="our engine decoding through the model's forward too (Engine(lean=False): before/after "
                         "the lean decode step, groundup/engine/decode_step.py)")
    ap.add_argument("--models", metavar="DIR", help="keep the random models in DIR/<size> and reuse them")
    args = ap.parse_args()
    try:
        import llama_cpp
    except ImportError:
        sys.exit("llama-cpp-python is not installed: pip install llama-cpp-python (builds from source, 10+ min)")
    torch.set_num_threads(args.threads)
    print(f"threads={args.threads} torch={torch.__version__} cpu={torch.backends.cpu.get_cpu_capability()} "
          f"llama-cpp-python={llama_cpp.__version__} dtype=float32 prompt={args.prompt} tokens={args.tokens} "
          f"rounds={args.rounds} load={os.getloadavg()[0]:.1f} OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')}")
    for size in (sorted(SIZES) if args.size == "all" else [args.size]):
        report(bench_size(size, args), args.streams, args.tokens)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
