"""`groundup eval retrieval`: BM25, dense and hybrid on a CodeSearchNet-style stdlib task.

Plugged into `groundup eval` (groundup/tasks/eval_cli.py) as one subcommand; the logic is in
groundup/rag/evaluate.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from groundup.errors import UserError


def add_parser(sub) -> None:
    r = sub.add_parser("retrieval", help="retrieval quality: bm25, dense and hybrid (MRR@10)",
                       description="Query = the first sentence of a function's docstring, "
                       "target = that function without its docstring, ranked among POOL "
                       "candidates; prints MRR@10 and recall@1/10 for bm25, dense and hybrid. "
                       "Default corpus: this interpreter's standard library.")
    r.add_argument("--corpus", metavar="DIR", help="Python sources to build the task from "
                   "(default: the standard library)")
    r.add_argument("--pools", type=int, default=1, help="pools to evaluate (default 1)")
    r.add_argument("--pool-size", type=int, default=1000, help="candidates per pool (default 1000)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--embedder", metavar="PATH",
                   help="sentence-transformers directory (default all-MiniLM-L6-v2); "
                        "`none`: BM25 only")
    r.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args: argparse.Namespace) -> int:
    from groundup.rag.cli import Progress
    from groundup.rag.evaluate import build_pairs, evaluate, format_report
    from groundup.tokenizer.corpus import default_corpus_files
    if args.pools < 1 or args.pool_size < 2:
        raise UserError("--pools must be at least 1 and --pool-size at least 2")
    if args.corpus:
        root = Path(args.corpus)
        if not root.is_dir():
            raise UserError(f"--corpus {root} is not a directory")
        files, base = sorted(root.rglob("*.py")), root
    else:
        import sysconfig
        files, base = default_corpus_files(), Path(sysconfig.get_paths()["stdlib"])
    pairs = build_pairs(files, base)
    embedder = None
    if args.embedder != "none":
        from groundup.rag.encoder import Embedder
        embedder = Embedder(args.embedder)
    progress = Progress()
    try:
        result = evaluate(pairs, args.pool_size, args.pools, args.seed, embedder, progress)
    except ValueError as e:
        raise UserError(str(e)) from None
    finally:
        progress.close()
    result["embedder"] = embedder.name if embedder else None
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    sys.stdout.flush()
    return 0
