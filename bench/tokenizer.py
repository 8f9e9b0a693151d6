"""Tokenizer benchmark on the embedded corpus (the stdlib without tests), vocab 8192.

Anchors, measured in the same run:
- training: HF `tokenizers` BpeTrainer (Rust) with the same split regex + ByteLevel;
- encoding: `tiktoken` (Rust) with our ranks, and HF `tokenizers` loading our exported
  tokenizer.json (and its own trained one).
Ratios are ours / anchor: of times for training (lower is better), of throughput for
encoding (higher is better). Each number is the best of --repeat runs (the machine is shared).

    .venv/bin/python bench/tokenizer.py [--vocab-size 8192] [--files N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import tiktoken
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from groundup.tokenizer import GPT4_PATTERN, default_corpus_files, train_tokenizer
from groundup.tokenizer.corpus import iter_texts
from groundup.tokenizer.export import to_hf_json


REPEAT = 3


def race(contenders: dict, before: dict | None = None) -> tuple[dict, dict]:
    """Run every contender once per round, REPEAT rounds, interleaved, and keep each one's
    best wall time: the machine is shared, and interleaving gives every contender the same
    chance at a quiet moment. `before[name]` runs untimed first (e.g. to clear a cache)."""
    best = {name: float("inf") for name in contenders}
    out = {}
    for _ in range(REPEAT):
        for name, fn in contenders.items():
            if before and name in before:
                before[name]()
            t0 = time.perf_counter()
            out[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return out, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--files", type=int, default=0, help="use only the first N files (0: all)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; best is kept")
    args = ap.parse_args()
    global REPEAT
    REPEAT = args.repeat

    files = default_corpus_files()
    if args.files:
        files = files[:args.files]
    texts = list(iter_texts(files))
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    print(f"corpus: {len(files)} files, {n_bytes / 1e6:.1f} MB; vocab {args.vocab_size}; "
          f"{os.cpu_count()} CPUs")

    # ---- training
    hf_own = Tokenizer(models.BPE())
    hf_own.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GPT4_PATTERN), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    hf_own.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=args.vocab_size - 32, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    out, t = race({
        "ours": lambda: train_tokenizer(files, args.vocab_size, progress=False),
        "hf": lambda: hf_own.train_from_iterator(texts, trainer),    # retrains from scratch
    })
    ours = out["ours"]
    print("\ntraining (same corpus, regex and vocab; seconds, best of %d)" % REPEAT)
    print(f"  groundup (Python)          {t['ours']:7.2f}")
    print(f"  HF BpeTrainer (Rust)       {t['hf']:7.2f}")
    print(f"  ratio groundup / HF time   {t['ours'] / t['hf']:7.2f}x   (goal: <= 5x)")

    # ---- encoding
    tt = tiktoken.Encoding("bench", pat_str=GPT4_PATTERN, mergeable_ranks=ours.vocab,
                           special_tokens={})
    hf_ours = Tokenizer.from_str(json.dumps(to_hf_json(ours)))
    names = {
        "ours1": "groundup encode (fast path, 1 thread)",
        "oursb": "groundup encode_batch (fast path)",
        "ref": "groundup reference encoder (Python, cold cache)",
        "tt1": "tiktoken encode_ordinary (1 thread)",
        "ttb": "tiktoken encode_ordinary_batch",
        "hf1": "HF tokenizers encode (1 call per text)",
        "hfb": "HF tokenizers encode_batch",
    }
    out, t = race({
        "ours1": lambda: [ours.encode(x) for x in texts],
        "oursb": lambda: ours.encode_batch(texts),
        "ref": lambda: [ours.encode_reference(x) for x in texts],
        "tt1": lambda: [tt.encode_ordinary(x) for x in texts],
        "ttb": lambda: tt.encode_ordinary_batch(texts),
        "hf1": lambda: [hf_ours.encode(x, add_special_tokens=False).ids for x in texts],
        "hfb": lambda: [e.ids for e in hf_ours.encode_batch(texts, add_special_tokens=False)],
    }, before={"ref": ours._cache.clear})
    same = all(ids == out["ours1"] for ids in out.values())
    r = {k: n_bytes / v / 1e6 for k, v in t.items()}
    print(f"\nencoding the corpus (MB/s, best of {REPEAT}; all give identical ids: {same})")
    for k, name in names.items():
        print(f"  {name:<50} {r[k]:7.2f}")
    print(f"  ratio groundup / tiktoken (1 thread)               {r['ours1'] / r['tt1']:7.2f}x")
    print(f"  ratio groundup / HF tokenizers (1 thread)          {r['ours1'] / r['hf1']:7.2f}x"
          "   (goal: >= 1x)")
    print(f"  ratio groundup / HF tokenizers (batch)             {r['oursb'] / r['hfb']:7.2f}x"
          "   (goal: >= 1x)")
    print(f"  ratio reference encoder / HF tokenizers (1 thread) {r['ref'] / r['hf1']:7.2f}x")

    # ---- compression
    n_ours = sum(map(len, out["ours1"]))
    n_hf = sum(len(e.ids) for e in hf_own.encode_batch(texts, add_special_tokens=False))
    print("\ncompression (UTF-8 bytes per token on the training corpus)")
    print(f"  groundup                   {n_bytes / n_ours:7.3f}")
    print(f"  HF BpeTrainer              {n_bytes / n_hf:7.3f}")


if __name__ == "__main__":
    main()
