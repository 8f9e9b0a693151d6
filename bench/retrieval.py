"""Retrieval speed, side by side with the anchors, on the Python standard library.

    1. embedding throughput: our WordPiece + BERT forward vs sentence-transformers, same texts,
       same batch size, float32 (texts/s; ratio = ours / theirs)
    2. BM25 indexing and query throughput vs bm25s on the same token lists
    3. the stdlib index: build time (chunking + BM25; embedding time from (1)), and p50/p95
       latency of a search through `Searcher` for bm25, dense and hybrid

Rates are taken in alternating rounds, best of each, so a noisy neighbour hits both sides
alike. The machine these numbers come from is named in docs/lab/ with the run.

    .venv/bin/python bench/retrieval.py [--texts 256] [--rounds 3] [--full]

Without --full the stdlib index gets real vectors for a sample of chunks, copied to fill the
rest: search *latency* does not depend on the vectors' values (timing only; quality comes
from `groundup eval retrieval`). --full embeds every chunk (long on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from groundup.rag.bm25 import BM25, tokenize, top_k
from groundup.rag.chunking import chunk_text
from groundup.rag.encoder import Embedder, default_model_dir
from groundup.rag.index import update
from groundup.rag.search import Searcher
from groundup.tokenizer.corpus import default_corpus_files

STDLIB = Path(sysconfig.get_paths()["stdlib"])
QUERIES = ["parse a url into its components", "read a zip archive", "send an email message",
           "compute the md5 digest of a file", "format a date as a string",
           "start a thread pool", "decode base64 data", "compare two sequences of lines",
           "copy a directory tree", "escape html special characters", "retry on timeout",
           "split a shell command into arguments", "lock a file", "temporary directory",
           "walk the abstract syntax tree", "read configuration from an ini file"]


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def stdlib_chunks():
    chunks = []
    for f in default_corpus_files():
        chunks += chunk_text(f.relative_to(STDLIB).as_posix(),
                             f.read_text(encoding="utf-8", errors="replace"))
    return chunks


def bench_embedding(texts: list[str], rounds: int) -> None:
    from sentence_transformers import SentenceTransformer
    ref = SentenceTransformer(str(default_model_dir()), device="cpu")
    ours = Embedder()
    ours.embed(texts[:8])
    ref.encode(texts[:8])
    best_ours = best_ref = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        a = ours.embed(texts, batch_size=32)
        best_ours = min(best_ours, time.perf_counter() - t)
        t = time.perf_counter()
        b = ref.encode(texts, batch_size=32, convert_to_numpy=True)
        best_ref = min(best_ref, time.perf_counter() - t)
    assert np.abs(a - b).max() < 1e-4
    print(f"embedding, {len(texts)} chunks, batch 32, float32, {torch.get_num_threads()} threads:"
          f" ours {len(texts) / best_ours:.1f}/s, sentence-transformers "
          f"{len(texts) / best_ref:.1f}/s -> ratio {best_ref / best_ours:.2f}x")
    return len(texts) / best_ours


def bench_bm25(docs: list[list[str]], rounds: int) -> None:
    import bm25s
    queries = [tokenize(q) for q in QUERIES] * 8
    best = {"ours_index": 1e9, "ref_index": 1e9, "ours_query": 1e9, "ref_query": 1e9}
    for _ in range(rounds):
        t = time.perf_counter()
        ours = BM25.build(docs)
        ours.weights                     # the per-posting scores: bm25s computes them at index
        best["ours_index"] = min(best["ours_index"], time.perf_counter() - t)
        t = time.perf_counter()
        ref = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
        ref.index(docs, show_progress=False)
        best["ref_index"] = min(best["ref_index"], time.perf_counter() - t)
        t = time.perf_counter()
        for q in queries:
            top_k(ours.scores(q), 10)
        best["ours_query"] = min(best["ours_query"], time.perf_counter() - t)
        t = time.perf_counter()
        for q in queries:
            known = [x for x in q if x in ref.vocab_dict]
            s = ref.get_scores(known)
            np.argpartition(-s, 10)[:10]
        best["ref_query"] = min(best["ref_query"], time.perf_counter() - t)
    n = len(queries)
    print(f"BM25 index, {len(docs)} chunks: ours {best['ours_index']:.2f}s, bm25s "
          f"{best['ref_index']:.2f}s -> ratio {best['ref_index'] / best['ours_index']:.2f}x")
    print(f"BM25 query, {n} queries: ours {n / best['ours_query']:.0f}/s, bm25s "
          f"{n / best['ref_query']:.0f}/s -> ratio {best['ref_query'] / best['ours_query']:.2f}x")


def bench_index(full: bool, sample: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # the corpus files only (no tests, no site-packages), copied: the index walks a tree
        root = Path(tmp) / "stdlib"
        for f in default_corpus_files():
            dest = root / f.relative_to(STDLIB)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
        db = Path(tmp) / "stdlib.db"
        emb = Embedder()
        t = time.perf_counter()
        stats = update(root, db, emb if full else None)
        build = time.perf_counter() - t
        con = sqlite3.connect(db)
        n = con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        print(f"stdlib index ({stats.files_seen} files, {n} chunks): built in {build:.1f}s "
              f"({'with' if full else 'without'} embedding)")
        if not full:   # real vectors for a sample, copied over the rest: timing only
            rows = con.execute("SELECT hash, header, text FROM chunks ORDER BY id").fetchall()
            uniq = list({h: (h, hd, tx) for h, hd, tx in rows}.values())
            vecs = emb.embed([f"{hd}\n{tx}" for _, hd, tx in uniq[:sample]])
            con.executemany("INSERT OR REPLACE INTO vectors (hash, vec) VALUES (?, ?)",
                            [(h, vecs[i % sample].tobytes()) for i, (h, _, _) in enumerate(uniq)])
            con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [
                ("embedder_fingerprint", emb.fingerprint), ("embedder_name", emb.name),
                ("embedder_path", str(emb.path)), ("embedder_dim", str(emb.dim)),
                ("generation", "99")])
            con.commit()
        con.close()
        t = time.perf_counter()
        s = Searcher(db, embedder=emb)
        print(f"  searcher load: {time.perf_counter() - t:.2f}s")
        for mode in ("bm25", "dense", "hybrid"):
            s.search(QUERIES[0], k=10, mode=mode)
            times, cpu = [], []
            for _ in range(3):
                for q in QUERIES:
                    t, c = time.perf_counter(), time.process_time()
                    s.search(q, k=10, mode=mode)
                    times.append((time.perf_counter() - t) * 1000)
                    cpu.append((time.process_time() - c) * 1000)
            times.sort()
            # CPU time: what the query costs this process, which a busy neighbour inflates less
            # than wall time (a query runs on one thread, so on a quiet core wall ~ CPU)
            print(f"  {mode:<6} query latency: p50 {statistics.median(times):.1f} ms, "
                  f"p95 {times[int(0.95 * (len(times) - 1))]:.1f} ms wall; p50 "
                  f"{statistics.median(cpu):.1f} ms CPU ({len(times)} queries)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--sample", type=int, default=256)
    ap.add_argument("--only", default="embed,bm25,index", help="comma-separated parts to run")
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} (shared machine: ratios, not absolutes)")
    chunks = stdlib_chunks()
    rng = np.random.default_rng(0)
    pick = rng.choice(len(chunks), size=min(args.texts, len(chunks)), replace=False)
    if "embed" in args.only:
        bench_embedding([chunks[i].indexed_text for i in pick], args.rounds)
    if "bm25" in args.only:
        bench_bm25([tokenize(c.indexed_text) for c in chunks], args.rounds)
    if "index" in args.only:
        bench_index(args.full, args.sample)


if __name__ == "__main__":
    main()
