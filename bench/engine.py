"""Engine benchmark: groundup's KV-cache engine against transformers `generate`, same weights, same dtype.

    python bench/engine.py [--device cpu|cuda] [--threads N] [--quick]

Measured in the same run, each side on the same random-weight Llama checkpoint:
  1. ~10M params (per-step overhead dominates): decode tokens/s at batch 1, ours / transformers,
     eager and with the forward torch.compile'd (Engine(compile=True));
  2. ~100M params (reading the weights dominates): decode tokens/s at batch 1, ours / transformers,
     and ours / the physical limit = (measured memory copy bandwidth) / (bytes of weights read per
     decoded token);
  3. prefill tokens/s on a 512-token prompt, ours / transformers;
  4. aggregate decode tokens/s with 16 concurrent sequences / batch 1 (ours), for both models,
     and on the 10M model for the compiled engine as well.
Decode rate = (tokens after the first) / (time after the first token): prefill is excluded on both
sides by timing generate(n=1) and generate(n=1+N) and taking the difference. The rates that a
ratio compares are measured in alternating rounds (ours, transformers, 16 sequences, ours, ...)
and the best of each kept, so a noisy neighbour on a shared machine hits all sides alike.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from groundup.engine import Engine, SamplingParams  # noqa: E402
from groundup.engine.cpu_linear import multi_row_kernels  # noqa: E402
from groundup.model import load_model  # noqa: E402


def hf_llama(dim, layers, heads, kv_heads, ffn, vocab, dtype, device):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv_heads, intermediate_size=ffn, vocab_size=vocab,
                      max_position_embeddings=2048)
    model = LlamaForCausalLM(cfg).eval()
    d = tempfile.mkdtemp(prefix="bench-engine-")
    model.save_pretrained(d)
    return model.to(device=device, dtype=dtype), d


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times)


def decode_rate(gen_n, n, repeats):
    """tokens/s of decode alone: (time for 1+n tokens - time for 1 token) / n"""
    gen_n(1)
    gen_n(1 + n)      # warm-up
    t1 = best(lambda: gen_n(1), repeats)
    tn = best(lambda: gen_n(1 + n), repeats)
    return n / max(tn - t1, 1e-9)


def hf_gen(hf, prompt, device):
    ids = torch.tensor([prompt], device=device)

    def run(n):
        with torch.inference_mode():
            hf.generate(ids, do_sample=False, max_new_tokens=n, min_new_tokens=n, eos_token_id=None,
                        pad_token_id=0, attention_mask=torch.ones_like(ids))
    return run


def our_gen(engine, prompt):
    return lambda n: engine.generate(prompt, SamplingParams(max_new_tokens=n))


def aggregate(eng, m, reps, prompts):
    """aggregate decode tokens/s with 16 sequences in one continuous batch (prefill excluded)"""
    eng.generate_batch(prompts, SamplingParams(max_new_tokens=4))
    t1 = best(lambda: eng.generate_batch(prompts, SamplingParams(max_new_tokens=1)), reps)
    tm = best(lambda: eng.generate_batch(prompts, SamplingParams(max_new_tokens=1 + m)), reps)
    return 16 * m / (tm - t1)


def side_by_side(measures, rounds):
    """{name: fn -> rate}: every fn run `rounds` times in alternation, the best rate of each kept.
    A burst of noise from a neighbour on a shared machine then hits every side alike, and no
    ratio divides a quiet moment's rate by a noisy one's."""
    out = {k: 0.0 for k in measures}
    for _ in range(rounds):
        for k, fn in measures.items():
            out[k] = max(out[k], fn())
    return out


def copy_bandwidth(device, nbytes=1 << 30):
    """bytes moved per second (read + write) by a large tensor copy"""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    dst.copy_(src)
    t = best(lambda: dst.copy_(src), 5)
    del src, dst
    return 2 * nbytes / t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    ap.add_argument("--quick", action="store_true", help="fewer tokens and repeats (a smoke run)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile'd engine (~1 min)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    n, reps, rounds = (16, 1, 2) if args.quick else (64, 2, 3)
    print(f"device={device} dtype={dtype} threads={torch.get_num_threads()} torch={torch.__version__}")
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, 8000, (16,), generator=g).tolist()

    # ---- 1. ~10M params: overhead-bound
    hf, d = hf_llama(256, 6, 4, 2, 704, 8192, dtype, device)
    eng = Engine(load_model(d, dtype=dtype, device=device))
    print(f"\n[10M] params={eng.model.num_params() / 1e6:.1f}M  multi-row kernels (timed at load): "
          f"{multi_row_kernels(eng.model) or 'n/a'}")
    prompts16 = [torch.randint(0, 8000, (16,), generator=g).tolist() for _ in range(16)]
    r = side_by_side({"ours": lambda: decode_rate(our_gen(eng, prompt), n, reps),
                      "theirs": lambda: decode_rate(hf_gen(hf, prompt, device), n, reps),
                      "agg": lambda: aggregate(eng, n, reps, prompts16)}, rounds)
    ours, theirs, agg = r["ours"], r["theirs"], r["agg"]
    print(f"  decode batch 1: ours {ours:8.1f} tok/s   transformers {theirs:8.1f} tok/s   ratio {ours / theirs:.2f}x  (goal >= 2x)")

    print(f"  decode 16 concurrent: {agg:8.1f} tok/s aggregate = {agg / ours:.2f}x batch 1  (goal >= 8x)")
    if not args.no_compile:   # the same engine with its forward torch.compile'd (Engine(compile=True))
        t = time.perf_counter()
        ceng = Engine(eng.model, compile=True)
        ceng.generate(prompt, SamplingParams(max_new_tokens=n + 2))     # compiles prefill + decode
        aggregate(ceng, 4, 1, prompts16)                                 # compiles the batched step too
        r = side_by_side({"b1": lambda: decode_rate(our_gen(ceng, prompt), n, reps),
                          "agg": lambda: aggregate(ceng, n, reps, prompts16)}, rounds)
        compiled, cagg = r["b1"], r["agg"]
        print(f"  decode batch 1, compiled: ours {compiled:8.1f} tok/s = {compiled / theirs:.2f}x transformers "
              f"(goal >= 2x), {compiled / ours:.2f}x eager; compiling took {time.perf_counter() - t:.0f} s")
        print(f"  decode 16 concurrent, compiled: {cagg:8.1f} tok/s aggregate = {cagg / compiled:.2f}x compiled "
              f"batch 1 (goal >= 8x), {cagg / ours:.2f}x eager batch 1")
        del ceng
    del hf, eng
    gc.collect()

    # ---- 2. ~100M params: bandwidth-bound
    hf, d = hf_llama(768, 12, 12, 4, 2048, 32000, dtype, device)
    eng = Engine(load_model(d, dtype=dtype, device=device))
    cfg = eng.model.config
    nparams = eng.model.num_params()
    # a decode step reads every weight once, except the embedding table (one row)
    read_bytes = (nparams - cfg.vocab_size * cfg.dim * (0 if cfg.tie_embeddings else 1)) * eng.model.lm_head.weight.element_size()
    print(f"\n[100M] params={nparams / 1e6:.1f}M  weights read per token={read_bytes / 1e6:.0f} MB  "
          f"multi-row kernels: {multi_row_kernels(eng.model) or 'n/a'}")
    # the anchor is measured before and after the decode runs and the higher value kept: on a
    # shared machine the copy rate moved 22-35 GB/s between runs, and a low reading would
    # flatter the fraction
    bw_before = copy_bandwidth(device)
    prompts16 = [torch.randint(0, 32000, (16,), generator=g).tolist() for _ in range(16)]
    r = side_by_side({"ours": lambda: decode_rate(our_gen(eng, prompt), n // 2, reps),
                      "theirs": lambda: decode_rate(hf_gen(hf, prompt, device), n // 2, reps),
                      "agg": lambda: aggregate(eng, n // 2, reps, prompts16)}, rounds)
    ours, theirs, agg = r["ours"], r["theirs"], r["agg"]
    bw = max(bw_before, copy_bandwidth(device))
    limit = bw / read_bytes
    print(f"  decode batch 1: ours {ours:8.1f} tok/s   transformers {theirs:8.1f} tok/s   ratio {ours / theirs:.2f}x  (goal >= 1.1x)")
    print(f"  memory copy bandwidth {bw / 1e9:.1f} GB/s -> limit {limit:.1f} tok/s; ours = {ours / limit:.0%} of it  (goal >= 70%)")
    print(f"  decode 16 concurrent: {agg:8.1f} tok/s aggregate = {agg / ours:.2f}x batch 1  (goal >= 8x)")

    # ---- 3. prefill on a 512-token prompt (same 100M model)
    long_prompt = torch.randint(0, 32000, (512,), generator=g).tolist()
    ids = torch.tensor([long_prompt], device=device)

    def hf_prefill():
        with torch.inference_mode():
            hf(ids, use_cache=True, logits_to_keep=1)
    eng.generate(long_prompt, SamplingParams(max_new_tokens=1))
    hf_prefill()
    t_ours = best(lambda: eng.generate(long_prompt, SamplingParams(max_new_tokens=1)), reps)
    t_hf = best(hf_prefill, reps)
    print(f"  prefill 512 tokens: ours {512 / t_ours:8.0f} tok/s   transformers {512 / t_hf:8.0f} tok/s   ratio {t_hf / t_ours:.2f}x")


if __name__ == "__main__":
    main()
