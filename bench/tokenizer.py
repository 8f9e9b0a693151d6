"""Tokenizer benchmark on the embedded corpus (the stdlib without tests), vocab 8192.

Anchors, measured in the same run:
- training: HF `tokenizers` BpeTrainer (Rust) with the same split regex + ByteLevel;
- encoding: `tiktoken` (Rust) with our ranks, and HF `tokenizers` loading our exported
  tokenizer.json (and its own trained one).
Every ratio is printed as ours / anchor for times (lower is better) or ours / anchor for
throughput (higher is better), as labelled.

    .venv/bin/python bench/tokenizer.py [--vocab-size 8192] [--files N]
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
from groundup.tokenizer.formats import to_hf_json


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--files", type=int, default=0, help="use only the first N files (0: all)")
    args = ap.parse_args()

    files = default_corpus_files()
    if args.files:
        files = files[:args.files]
    texts = list(iter_texts(files))
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    print(f"corpus: {len(files)} files, {n_bytes / 1e6:.1f} MB; vocab {args.vocab_size}; "
          f"{os.cpu_count()} CPUs")

    # ---- training
    ours, t_ours = timed(lambda: train_tokenizer(files, args.vocab_size, progress=False))
    hf_own = Tokenizer(models.BPE())
    hf_own.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GPT4_PATTERN), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    hf_own.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=args.vocab_size - 32, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    _, t_hf = timed(lambda: hf_own.train_from_iterator(texts, trainer))
    print("\ntraining (same corpus, regex and vocab)")
    print(f"  groundup (Python)          {t_ours:7.2f} s")
    print(f"  HF BpeTrainer (Rust)       {t_hf:7.2f} s")
    print(f"  ratio groundup / HF time   {t_ours / t_hf:7.2f}x   (goal: <= 5x)")

    # ---- encoding
    tt = tiktoken.Encoding("bench", pat_str=GPT4_PATTERN, mergeable_ranks=ours.vocab,
                           special_tokens={})
    hf_ours = Tokenizer.from_str(json.dumps(to_hf_json(ours)))
    rows = []

    def mbps(fn):
        out, sec = timed(fn)
        return out, n_bytes / sec / 1e6

    ids_fast, r = mbps(lambda: [ours.encode(t) for t in texts])
    rows.append(("groundup encode (fast path, 1 thread)", r))
    _, r = mbps(lambda: ours.encode_batch(texts))
    rows.append(("groundup encode_batch (fast path)", r))
    ours._cache.clear()
    ids_ref, r = mbps(lambda: [ours.encode_reference(t) for t in texts])
    rows.append(("groundup reference encoder (Python, cold cache)", r))
    ids_tt, r_tt1 = mbps(lambda: [tt.encode_ordinary(t) for t in texts])
    rows.append(("tiktoken encode_ordinary (1 thread)", r_tt1))
    _, r_ttb = mbps(lambda: tt.encode_ordinary_batch(texts))
    rows.append(("tiktoken encode_ordinary_batch", r_ttb))
    ids_hf, r_hf1 = mbps(lambda: [hf_ours.encode(t, add_special_tokens=False).ids for t in texts])
    rows.append(("HF tokenizers encode (1 call per text)", r_hf1))
    _, r_hfb = mbps(lambda: hf_ours.encode_batch(texts, add_special_tokens=False))
    rows.append(("HF tokenizers encode_batch", r_hfb))
    same = ids_fast == ids_ref == ids_tt == [e for e in ids_hf]
    print(f"\nencoding the corpus (MB/s; all four give identical ids: {same})")
    for name, r in rows:
        print(f"  {name:<50} {r:7.2f}")
    r_ours1 = rows[0][1]
    r_oursb = rows[1][1]
    print(f"  ratio groundup / tiktoken (1 thread)            {r_ours1 / r_tt1:7.2f}x")
    print(f"  ratio groundup / HF tokenizers (1 thread)       {r_ours1 / r_hf1:7.2f}x   (goal: >= 1x)")
    print(f"  ratio groundup / HF tokenizers (batch)          {r_oursb / r_hfb:7.2f}x   (goal: >= 1x)")
    print(f"  ratio reference / HF tokenizers (1 thread)      {rows[2][1] / r_hf1:7.2f}x")

    # ---- compression
    n_ours = sum(map(len, ids_fast))
    n_hf = sum(len(e.ids) for e in hf_own.encode_batch(texts, add_special_tokens=False))
    print("\ncompression (UTF-8 bytes per token on the training corpus)")
    print(f"  groundup                   {n_bytes / n_ours:7.3f}")
    print(f"  HF BpeTrainer              {n_bytes / n_hf:7.3f}")


if __name__ == "__main__":
    main()
