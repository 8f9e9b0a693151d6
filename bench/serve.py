"""Serving benchmark: `groundup serve` under concurrent streams, and a profile of one decode step.

    python bench/serve.py [--size 10m|100m] [--tokens 200] [--quick] [--profile BATCH]

On a random-weight Llama model (the sizes of bench/engine.py) with a byte-level BPE tokenizer
trained here on the standard library, measured in one run:
  1. `groundup serve` on loopback, /v1/completions streamed, a 32-token prompt, greedy:
     aggregate generated tokens/s at 1, 4, 16 and 32 concurrent streams, as a ratio to one
     stream (goal: >= 6x at 16), and time to first token p50/p99 at 16 streams;
  2. `--profile BATCH`: where one decode step's time goes (torch.profiler, ops grouped).
The same model against llama.cpp (GGUF, same dtype, batch 1 and 16 sequences, greedy tokens
compared) is bench/vs_llamacpp.py, which imports this file's models.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIZES = {"10m": (256, 6, 4, 2, 704, 8192), "100m": (768, 12, 12, 4, 2048, 32000)}


def make_model(size: str, out: Path) -> Path:
    """A random-weight HF Llama directory with a byte-level BPE tokenizer trained on the stdlib."""
    import sysconfig

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    dim, layers, heads, kv, ffn, vocab = SIZES[size]
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([str(f) for f in files], trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>",
                                     eos_token="<|end_of_text|>")
    hf_tok.chat_template = ("{% for m in messages %}<|begin_of_text|>{{ m['role'] }}: {{ m['content'] }}\n"
                            "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                      intermediate_size=ffn, vocab_size=len(hf_tok), max_position_embeddings=2048,
                      bos_token_id=0, eos_token_id=1)
    LlamaForCausalLM(cfg).eval().save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


# ------------------------------------------------------------------ 1. the server under load
def start_server(model_dir: Path, max_batch: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "groundup", "serve", "--model", str(model_dir), "--name", "bench",
                             "--port", "0", "--max-batch", str(max_batch), "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    url = line.split(" at ")[1].split("/v1")[0]
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


async def one_stream(client, url, prompt, n):
    """(generated tokens, seconds to the first token, seconds in all) of one streamed completion"""
    t0 = time.perf_counter()
    first, tokens = None, 0
    body = {"model": "bench", "prompt": prompt, "max_tokens": n, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and first is None:
                first = time.perf_counter() - t0
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return tokens, first, time.perf_counter() - t0


async def load(url, prompts, n):
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=64)) as client:
        t0 = time.perf_counter()
        res = await asyncio.gather(*(one_stream(client, url, p, n) for p in prompts))
        return res, time.perf_counter() - t0


def bench_server(model_dir: Path, vocab: int, n: int, rounds: int) -> dict:
    from groundup.engine import SamplingParams, load_engine

    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(2, vocab, (32,), generator=g).tolist() for _ in range(32)]
    eng = load_engine(model_dir)               # the same engine in this process: the server's overhead
    eng.generate(prompts[0], SamplingParams(max_new_tokens=4))      # warm up (first-call allocations)
    proc, url = start_server(model_dir, 32)
    try:
        asyncio.run(load(url, prompts[:4], 8))                         # warm up
        best: dict[int | str, float] = {}
        ttft16: list[float] = []
        for _ in range(rounds):                                         # alternating rounds, best of each
            t = time.perf_counter()
            k = len(eng.generate(prompts[0], SamplingParams(max_new_tokens=n)).token_ids)
            best["engine"] = max(best.get("engine", 0.0), k / (time.perf_counter() - t))
            for c in (1, 4, 16, 32):
                res, wall = asyncio.run(load(url, prompts[:c], n))
                rate = sum(r[0] for r in res) / wall
                best[c] = max(best.get(c, 0.0), rate)
                if c == 16:
                    ttft16 += [r[1] for r in res]
        return {"rates": best, "ttft16": ttft16}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def profile_decode(model_dir: Path, vocab: int, batch: int, lean: bool = True) -> None:
    """Where one decode step's time goes: torch.profiler over 20 steps, ops grouped; and how
    much of the step is spent outside torch's operators (Python: the engine's bookkeeping,
    building the step's inputs, sampling's loop, the calls themselves)."""
    from torch.profiler import ProfilerActivity, profile

    from groundup.engine import SamplingParams, load_engine
    from groundup.engine.engine import Batch, Sequence

    eng = load_engine(model_dir, dtype="float32", device="cpu", lean=lean)
    g = torch.Generator().manual_seed(3)
    b = Batch(eng, batch, 512)
    with torch.inference_mode():
        for _ in range(batch):
            b.add(Sequence(eng, torch.randint(2, vocab, (32,), generator=g).tolist(),
                           SamplingParams(max_new_tokens=400, stop_ids=())))
        for _ in range(5):
            b.step()
        t = time.perf_counter()
        for _ in range(20):
            b.step()
        step = (time.perf_counter() - t) / 20
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t = time.perf_counter()
            for _ in range(20):
                b.step()
            step_prof = (time.perf_counter() - t) / 20          # the profiler's own cost included
    print(f"\n[profile] one decode step, batch {batch}, {'lean step' if lean else 'the model forward'}: "
          f"{step * 1000:.2f} ms")
    top = [e for e in prof.events() if e.cpu_parent is None]          # operators called from Python
    in_ops = sum(e.cpu_time_total for e in top) / 20 / 1000           # ms per step inside them
    groups: dict[str, float] = {}
    for e in top:
        g = ("linears" if e.name in ("aten::mm", "aten::addmm", "aten::linear", "mkldnn::_linear_pointwise")
             else "attention" if "attention" in e.name else "other ops")
        groups[g] = groups.get(g, 0.0) + e.cpu_time_total / 20 / 1000
    print(f"  {len(top) // 20} operators called per step; inside them {in_ops:.2f} ms "
          + ", ".join(f"{k} {v:.2f}" for k, v in sorted(groups.items(), key=lambda kv: -kv[1]))
          + f"; between them (Python) {step_prof * 1000 - in_ops:.2f} ms of the profiled step's "
          f"{step_prof * 1000:.2f}")
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    for e in rows:
        print(f"  {e.key[:48]:48s} {e.self_cpu_time_total / 20 / 1000:7.3f} ms/step  "
              f"{100 * e.self_cpu_time_total / total:5.1f}%  x{e.count // 20}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="10m", choices=sorted(SIZES))
    ap.add_argument("--tokens", type=int, default=200, help="tokens generated per stream (default 200)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="32 tokens, one round (a smoke run)")
    ap.add_argument("--profile", type=int, default=0, metavar="BATCH",
                    help="only profile one decode step at this batch size (torch.profiler) and exit")
    ap.add_argument("--forward", action="store_true", help="profile the model's forward, not the lean decode step")
    ap.add_argument("--models", metavar="DIR", help="keep the random model in DIR/<size> and reuse it")
    args = ap.parse_args()
    n, rounds = (32, 1) if args.quick else (args.tokens, args.rounds)
    print(f"size={args.size} tokens/stream={n} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"cpu={torch.backends.cpu.get_cpu_capability()}")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        d = Path(args.models or tmp) / args.size
        if not (d / "config.json").is_file():
            make_model(args.size, d)
        vocab = json.loads((d / "config.json").read_text())["vocab_size"]
        if args.profile:
            profile_decode(d, vocab, args.profile, lean=not args.forward)
            return
        print("\n[groundup serve] /v1/completions, streamed, greedy, 32-token prompts")
        s = bench_server(d, vocab, n, rounds)
        r1 = s["rates"][1]
        print(f"  the engine in-process, one stream: {s['rates'].pop('engine'):8.1f} tok/s (prefill included, "
              "no HTTP): the server's own cost is the gap to the line below")
        for c, r in s["rates"].items():
            print(f"  {c:2d} streams: {r:8.1f} tok/s aggregate = {r / r1:5.2f}x one stream"
                  + ("   (goal >= 6x)" if c == 16 else ""))
        q = sorted(s["ttft16"])
        print(f"  time to first token at 16 streams: p50 {statistics.median(q) * 1000:.0f} ms, "
              f"p99 {q[min(len(q) - 1, int(0.99 * len(q)))] * 1000:.0f} ms")
        print("\n(llama.cpp side by side, same model as GGUF: python bench/vs_llamacpp.py)")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
