"""Retrieval quality, measured: a CodeSearchNet-style task built from the standard library.

CodeSearchNet (Husain et al., 2019) asks: given a function's docstring, find the function.
We build the same task from the Python that ships with the interpreter (no download):

    query     the first sentence of a function's docstring    "Return the file's size."
    target    that function's source with the docstring cut out
    pool      1,000 candidates: the targets of 1,000 queries; each query ranks all of them

and report, per method, MRR@10 (the mean of 1/rank of the right function, 0 past rank 10)
and recall@1 / recall@10 (how often it is first / in the top 10). For scale, CodeSearchNet's
Python MRR (same pool size): NBoW 0.19, CodeBERT 0.67 -- different functions and a
fine-tuned code model, so context, not a leaderboard.

Design choices:
- The docstring is removed from the target, otherwise BM25 would just match the query
  against its own words in the code; what is left is names, calls and comments -- the real
  vocabulary gap between how people ask and how code is written.
- Queries that repeat within the data set are dropped (ambiguous: two right answers), and
  so are one- or two-word first sentences and functions of fewer than three lines.
- The three methods run on the same pools in one run; `dense-f16` reruns dense with the
  vectors rounded to float16 (what `groundup index --dtype float16` stores), to price it;
  `hybrid-1:1` is the fusion with equal weights, beside the default 0.3 : 1 (search.py).
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from groundup.rag.bm25 import BM25, tokenize
from groundup.rag.search import WEIGHTS, rrf

PUBLISHED = {"NBoW (CodeSearchNet, Python)": 0.19, "CodeBERT (CodeSearchNet, Python)": 0.67}


@dataclass(frozen=True)
class Pair:
    query: str
    code: str
    where: str           # path:line, for reading the failures


def first_sentence(doc: str) -> str:
    para = doc.strip().split("\n\n")[0]
    para = " ".join(para.split())
    m = re.match(r"(.+?[.!?])(\s|$)", para)
    return (m.group(1) if m else para).strip()


def pairs_from_source(text: str, where: str) -> list[Pair]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.split("\n")
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(node, clean=True)
        if not doc:
            continue
        query = first_sentence(doc)
        if len(query.split()) < 3:
            continue
        ds = node.body[0]
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        kept = [ln for n, ln in enumerate(lines[start - 1:node.end_lineno], start)
                if not ds.lineno <= n <= ds.end_lineno]
        if len([ln for ln in kept if ln.strip()]) < 3:
            continue
        out.append(Pair(query, "\n".join(kept), f"{where}:{node.lineno}"))
    return out


def build_pairs(files: Iterable[Path], root: Path | None = None) -> list[Pair]:
    pairs: list[Pair] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        where = f.relative_to(root).as_posix() if root else f.name
        pairs += pairs_from_source(text, where)
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.query.lower()] = counts.get(p.query.lower(), 0) + 1
    return [p for p in pairs if counts[p.query.lower()] == 1]


def rank_of_target(order: np.ndarray | list[int], target: int, depth: int = 10) -> int | None:
    """1-based rank of `target` in a ranking (best first), None when deeper than `depth`."""
    for r, d in enumerate(list(order)[:depth], 1):
        if d == target:
            return r
    return None


def metrics(ranks: list[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {"mrr@10": sum(1.0 / r for r in ranks if r) / n,
            "recall@1": sum(1 for r in ranks if r == 1) / n,
            "recall@10": sum(1 for r in ranks if r) / n}


def evaluate_pool(pool: list[Pair], embedder=None,
                  progress: Callable[[str, int, int], None] | None = None) -> dict[str, list]:
    """Ranks of each query's target under each method, on one pool."""
    bm = BM25.build([tokenize(p.code) for p in pool])
    ranks: dict[str, list] = {"bm25": [], "dense": [], "hybrid": [], "hybrid-1:1": [],
                              "dense-f16": []}
    lexical_orders = []
    for i, p in enumerate(pool):
        s = bm.scores(tokenize(p.query))
        order = np.lexsort((np.arange(len(pool)), -s))[:100]
        order = [int(d) for d in order if s[d] > 0]
        lexical_orders.append(order)
        ranks["bm25"].append(rank_of_target(order, i))
    if embedder is None:
        del ranks["dense"], ranks["hybrid"], ranks["hybrid-1:1"], ranks["dense-f16"]
        return ranks
    done = [0]

    def tick(kind: str, total: int):
        def f(n: int):
            done[0] += n
            if progress:
                progress(kind, done[0], total)
        return f
    code_vecs = embedder.embed([p.code for p in pool], progress=tick("embed", 2 * len(pool)))
    query_vecs = embedder.embed([p.query for p in pool], progress=tick("embed", 2 * len(pool)))
    sims = query_vecs @ code_vecs.T                                             # (Q, C)
    sims16 = (query_vecs.astype(np.float16).astype(np.float32)
              @ code_vecs.astype(np.float16).astype(np.float32).T)
    for i in range(len(pool)):
        dense = np.lexsort((np.arange(len(pool)), -sims[i]))[:100].tolist()
        ranks["dense"].append(rank_of_target(dense, i))
        ranks["dense-f16"].append(rank_of_target(
            np.lexsort((np.arange(len(pool)), -sims16[i]))[:10].tolist(), i))
        fused = [d for d, _ in rrf([lexical_orders[i], dense], list(WEIGHTS))]
        ranks["hybrid"].append(rank_of_target(fused, i))
        equal = [d for d, _ in rrf([lexical_orders[i], dense])]
        ranks["hybrid-1:1"].append(rank_of_target(equal, i))
    return ranks


def evaluate(pairs: list[Pair], pool_size: int = 1000, pools: int = 1, seed: int = 0,
             embedder=None, progress=None) -> dict:
    rng = random.Random(seed)
    pairs = list(pairs)
    rng.shuffle(pairs)
    pools = min(pools, len(pairs) // pool_size)
    if pools < 1:
        raise ValueError(f"only {len(pairs)} query/function pairs: fewer than one pool of "
                         f"{pool_size}")
    all_ranks: dict[str, list] = {}
    failures = []
    for k in range(pools):
        pool = pairs[k * pool_size:(k + 1) * pool_size]
        ranks = evaluate_pool(pool, embedder, progress)
        for method, r in ranks.items():
            all_ranks.setdefault(method, []).extend(r)
        if "hybrid" in ranks:
            failures += [(pool[i].query, pool[i].where) for i, r in enumerate(ranks["hybrid"])
                         if r is None][:5]
    return {"pairs_available": len(pairs), "pools": pools, "pool_size": pool_size,
            "queries": pools * pool_size,
            "methods": {m: metrics(r) for m, r in all_ranks.items()},
            "hybrid_misses": failures[:10]}


def format_report(result: dict) -> str:
    rows = [f"CodeSearchNet-style retrieval on the standard library: {result['queries']} "
            f"queries in {result['pools']} pool(s) of {result['pool_size']} "
            f"({result['pairs_available']} pairs available)", "",
            f"  {'method':<10} {'MRR@10':>7} {'R@1':>7} {'R@10':>7}"]
    for m, v in result["methods"].items():
        rows.append(f"  {m:<10} {v['mrr@10']:>7.3f} {v['recall@1']:>7.3f} {v['recall@10']:>7.3f}")
    rows.append("")
    rows.append("  published, CodeSearchNet Python MRR: " +
                ", ".join(f"{k.split(' ')[0]} {v}" for k, v in PUBLISHED.items()))
    return "\n".join(rows)
