"""Searching an index: BM25, dense vectors, and the two fused by reciprocal rank.

    query ──tokenize──> BM25 over the stored CSC matrix   -> scores (N,) -> ranking A
          ──embed─────> one unit vector q (dim,);  V @ q  -> cosines (N,) -> ranking B
          ──RRF───────> score(d) = w_A / (60 + rank_A(d)) + w_B / (60 + rank_B(d))

Why fuse ranks and not scores: a BM25 score (0..30, unbounded) and a cosine (-1..1) are in
different units, and their spread changes query by query; a rank is comparable everywhere.
RRF (Cormack et al., 2009) rewards a chunk both lists like, and k = 60 keeps one list's
first place from drowning the other's: 1/61 vs 1/62 is a nudge, not a verdict. BM25's list
is weighted 0.3 against dense's 1: measured, equal weights let BM25's confident misses pull
hybrid below dense alone.

Design choices:
- A `Searcher` loads the BM25 matrix and all vectors once (a few blobs and one join) and
  keeps them; each search re-reads one meta value (`generation`) and reloads only when an
  index run changed something -- a long-lived searcher (the agent's tool, an MCP server)
  stays fresh at the cost of one tiny query.
- The embedder is the one the index was built with (its path is in the index); a different
  `--embedder` is refused, since cosines between two models' vectors mean nothing.
- `mode=None` means hybrid when the index has vectors and BM25 otherwise.
- `search_code(root, query, k, glob)` is the whole feature as one call -- find the
  workspace's index, refresh it once per process, search -- for the agent's tool and MCP.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from groundup.errors import UserError
from groundup.gitignore import path_matches
from groundup.rag.bm25 import tokenize, top_k
from groundup.rag.index import DEFAULT_DB, connect, get_meta, load_bm25, update

MODES = ("bm25", "dense", "hybrid")
RRF_K = 60
CANDIDATES = 100        # how deep each ranking goes into the fusion
# (bm25, dense) weights: on a stdlib docstring -> code pool (seed 1), 0.3 : 1 beat both
# single methods and the equal weights, which fell below dense alone (docs/lab/2026-12-03-rag.md)
WEIGHTS = (0.3, 1.0)


@dataclass
class Result:
    path: str
    start_line: int
    end_line: int
    score: float
    text: str
    header: str = ""
    kind: str = ""

    def as_dict(self) -> dict:
        return {"path": self.path, "start_line": self.start_line, "end_line": self.end_line,
                "score": round(self.score, 6), "text": self.text}

    @property
    def source(self) -> str:
        return f"{self.path}:{self.start_line}-{self.end_line}"


def rrf(rankings: list[list[int]], weights: list[float] | None = None,
        k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of several rankings (best first) -> (doc, score), best first."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, w in zip(rankings, weights):
        for rank, doc in enumerate(ranking, 1):
            fused[doc] = fused.get(doc, 0.0) + w / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def dense_top_k(matrix: np.ndarray, q: np.ndarray, k: int,
                allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
    """Rows of `matrix` (N, dim) with the highest dot product with q (dim,), best first."""
    sims = matrix @ q.astype(matrix.dtype)                                  # (N,)
    sims = sims.astype(np.float32)
    if allowed is not None:
        sims = np.where(allowed, sims, -np.inf)
    k = min(k, int(np.isfinite(sims).sum()))
    if k <= 0:
        return []
    idx = np.argpartition(-sims, k - 1)[:k]
    idx = idx[np.lexsort((idx, -sims[idx]))]
    return [(int(i), float(sims[i])) for i in idx]


class Searcher:
    def __init__(self, db: str | Path, embedder=None):
        """`embedder`: None loads the index's own model when a dense search needs it;
        a path or an Embedder must match the index's (checked)."""
        self.db = Path(db)
        self.con = connect(self.db)
        self._embedder, self._embedder_arg = None, embedder
        self._generation: str | None = None
        self._glob_cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self.reload_if_changed()

    # ------------------------------------------------------------------ loading

    def reload_if_changed(self) -> None:
        gen = get_meta(self.con, "generation")
        if gen == self._generation:
            return
        self.complete = get_meta(self.con, "complete") == "1"
        self.bm25, self.chunk_ids = load_bm25(self.con)
        # the BM25 matrix decides which chunks exist; while an index run is under way the
        # chunks table may be ahead of it, and a replaced chunk is simply not returned
        paths = dict(self.con.execute("SELECT id, path FROM chunks"))
        self.paths = [paths.get(cid, "") for cid in self.chunk_ids.tolist()]
        self.dim = int(get_meta(self.con, "embedder_dim") or 0)
        self.matrix = np.zeros((len(self.paths), self.dim), dtype=np.float32)
        self.has_vector = np.zeros(len(self.paths), dtype=bool)
        if self.dim:
            dtype = np.float16 if get_meta(self.con, "vector_dtype") == "float16" else np.float32
            pos = {cid: n for n, cid in enumerate(self.chunk_ids.tolist())}
            for cid, blob in self.con.execute("SELECT c.id, v.vec FROM chunks c JOIN vectors v "
                                              "ON v.hash = c.hash"):
                n = pos.get(cid)
                if n is None:
                    continue
                self.matrix[n] = np.frombuffer(blob, dtype=dtype)
                self.has_vector[n] = True
        self._glob_cache.clear()
        self._generation = gen

    @property
    def embedder(self):
        if self._embedder is None:
            from groundup.rag.encoder import Embedder
            arg = self._embedder_arg
            if arg is None or isinstance(arg, (str, Path)):
                path = arg or get_meta(self.con, "embedder_path")
                if not path or not Path(path).is_dir():
                    raise UserError(f"the index's embedder ({get_meta(self.con, 'embedder_name')}"
                                    f" at {path or '?'}) is not on this machine -- pass "
                                    "--embedder PATH to the same model, or use --mode bm25")
                arg = Embedder(path)
            if arg.fingerprint != get_meta(self.con, "embedder_fingerprint"):
                raise UserError(f"{self.db} was built with embedder "
                                f"{get_meta(self.con, 'embedder_name')!r}, not {arg.name!r}: "
                                "use the same --embedder, or rebuild with `groundup index "
                                "--rebuild --embedder ...`")
            self._embedder = arg
        return self._embedder

    def _allowed(self, glob: str | None) -> np.ndarray | None:
        if not glob:
            return None
        if glob not in self._glob_cache:
            memo: dict[str, bool] = {}
            self._glob_cache[glob] = np.array(
                [memo.setdefault(p, path_matches(glob, p)) for p in self.paths], dtype=bool)
        return self._glob_cache[glob]

    # ------------------------------------------------------------------ searching

    def default_mode(self) -> str:
        return "hybrid" if self.dim and self.has_vector.any() else "bm25"

    def rank(self, query: str, k: int = 10, mode: str | None = None, glob: str | None = None,
             weights: tuple[float, float] = WEIGHTS) -> list[tuple[int, float]]:
        """(position in the index, score) of the best k chunks, best first."""
        mode = mode or self.default_mode()
        if mode not in MODES:
            raise UserError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        if mode != "bm25" and not self.has_vector.any():
            raise UserError(f"the index at {self.db} has no vectors (built without an "
                            "embedder) -- use --mode bm25, or rebuild with an embedder")
        allowed = self._allowed(glob)
        depth = k if mode != "hybrid" else max(CANDIDATES, k)
        lexical = dense = []
        if mode in ("bm25", "hybrid"):
            scores = self.bm25.scores(tokenize(query))
            if allowed is not None:
                scores = np.where(allowed, scores, 0.0)
            lexical = top_k(scores, depth)
        if mode in ("dense", "hybrid"):
            q = self.embedder.embed([query])[0]
            ok = self.has_vector if allowed is None else (self.has_vector & allowed)
            dense = dense_top_k(self.matrix, q, depth, ok)
        if mode == "bm25":
            return lexical
        if mode == "dense":
            return dense
        fused = rrf([[d for d, _ in lexical], [d for d, _ in dense]], list(weights))
        return fused[:k]

    def search(self, query: str, k: int = 10, mode: str | None = None, glob: str | None = None,
               weights: tuple[float, float] = WEIGHTS) -> list[Result]:
        if k < 1:
            raise UserError(f"k must be at least 1 (got {k})")
        with self._lock:
            self.reload_if_changed()
            ranked = self.rank(query, k, mode, glob, weights)
            ids = [int(self.chunk_ids[n]) for n, _ in ranked]
            rows = {r[0]: r for r in self.con.execute(
                "SELECT id, path, start_line, end_line, text, header, kind FROM chunks "
                f"WHERE id IN ({','.join('?' * len(ids))})", ids)} if ids else {}
        return [Result(rows[cid][1], rows[cid][2], rows[cid][3], score, rows[cid][4],
                       rows[cid][5], rows[cid][6]) for cid, (_, score) in zip(ids, ranked)
                if cid in rows]

    def close(self) -> None:
        self.con.close()


# ---------------------------------------------------------------- one call, for tools

_searchers: dict[Path, Searcher] = {}
_refreshed: set[Path] = set()
_lock = threading.Lock()


def index_path(root: str | Path) -> Path:
    return Path(root) / DEFAULT_DB


def search_code(root: str | Path, query: str, k: int = 10, glob: str | None = None, *,
                db: str | Path | None = None, mode: str | None = None,
                refresh: bool = True) -> list[dict]:
    """Search the workspace `root` through its index (`root/.groundup/index.db` unless `db`).

    The first call in a process refreshes the index incrementally (changed files re-chunked,
    changed chunks re-embedded); later calls reuse the loaded searcher. Returns
    [{"path", "start_line", "end_line", "score", "text"}], best first."""
    db = Path(db) if db else index_path(root)
    key = db.resolve()
    with _lock:
        searcher = _searchers.get(key)
        if refresh and key not in _refreshed:
            if searcher is None:
                searcher = Searcher(db)
            has_vectors = searcher.dim > 0
            update(root, db, searcher.embedder if has_vectors else None,
                   vector_dtype=get_meta(searcher.con, "vector_dtype") or "float32")
            _refreshed.add(key)
        if searcher is None:
            searcher = Searcher(db)
        _searchers[key] = searcher
    return [r.as_dict() for r in searcher.search(query, k=k, mode=mode, glob=glob)]
