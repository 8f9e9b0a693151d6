"""BM25: ranking by the words a query shares with a chunk, weighted by how rare they are.

For a query q and a document d (Okapi BM25, Lucene's variant):

    score(q, d) = sum over query terms t of   idf(t) * tf(t, d) / (tf(t, d) + k1 * norm(d))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))     N documents, df(t) contain t
    norm(d)     = 1 - b + b * |d| / avgdl                        |d| tokens in d

- idf: a word in every chunk (`self`, `return`) is worth almost nothing, a rare one a lot;
  Lucene's `1 +` inside the log keeps it positive even for a word in most documents.
- tf saturates: the 10th `parse` in a function adds far less than the first (k1 = 1.5).
- norm: a match in a short chunk counts more than one in a long chunk (b = 0.75).

Design choices:
- English glue words (`a`, `the`, `of`...) are dropped: a query's "a" would otherwise make a
  chunk that happens to contain it outrank one that matches by meaning, once fused.
- Code-aware tokens: words are runs of letters, digits and `_`, lowercased; a `snake_case`
  or `CamelCase` word also yields its parts (`parse_http_url` -> parse_http_url, parse,
  http, url; `HTTPServer` -> httpserver, http, server), so `http server` finds both spellings
  while the exact identifier still scores highest (it matches more terms).
- Sparse, column by column (CSC): for each term the sorted document ids that contain it and
  its counts there. A query touches only its own terms' columns -- work proportional to the
  postings read, not to the corpus. Each posting's whole contribution is computed once for
  the corpus (`weights`), so a query term is one numpy gather-add.
- Scores equal `bm25s` (method "lucene", same k1 and b) within float tolerance on the same
  tokens: a test checks. A repeated query term counts each time, as in bm25s and rank_bm25.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

K1, B = 1.5, 0.75

_WORD = re.compile(r"\w+")
# English glue words (Lucene's English list, minus words that are also code: `if`, `not`,
# `no`, `for`, `in`, `is`, `or`, `and`...): in a query they match everything and nothing
STOPWORDS = frozenset("a an the of to at by with as be are was were this that these those it "
                      "its into such their then there they will".split())
_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|[^\W\d_A-Za-z]+")


def tokenize(text: str) -> list[str]:
    """Lowercased words; identifiers also split into their snake_case / CamelCase parts."""
    out: list[str] = []
    for word in _WORD.findall(text):
        low = word.lower()
        if low in STOPWORDS:
            continue
        out.append(low)
        if "_" in word or (not word.islower() and not word.isupper()) or (
                any(c.isdigit() for c in word) and not word.isdigit()):
            parts = _PARTS.findall(word)
            if parts and (len(parts) > 1 or parts[0].lower() != low):
                out.extend(p.lower() for p in parts)
    return out


@dataclass
class BM25:
    """A BM25 index over documents given as token lists."""
    vocab: dict[str, int]          # term -> column
    indptr: np.ndarray             # (V + 1,) int64: column t is postings[indptr[t]:indptr[t+1]]
    doc_ids: np.ndarray            # (P,) int32: the documents of each column, ascending
    tfs: np.ndarray                # (P,) float32: the term's count in that document
    doc_len: np.ndarray            # (N,) float32: tokens per document
    k1: float = K1
    b: float = B

    @property
    def n_docs(self) -> int:
        return len(self.doc_len)

    @classmethod
    def build(cls, docs: Iterable[Sequence[str]], k1: float = K1, b: float = B) -> "BM25":
        return cls.from_counts([Counter(d) for d in docs], k1=k1, b=b)

    @classmethod
    def from_counts(cls, counts: Sequence[dict[str, int]], k1: float = K1,
                    b: float = B) -> "BM25":
        """From each document's term counts (what the index stores per chunk)."""
        vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        for d, c in enumerate(counts):
            for term, n in c.items():
                cols.append(vocab.setdefault(term, len(vocab)))
                rows.append(d)
                vals.append(n)
        cols_a = np.asarray(cols, dtype=np.int64)
        order = np.argsort(cols_a, kind="stable")      # stable: doc ids stay ascending per term
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(cols_a, minlength=len(vocab)), out=indptr[1:])
        lengths = [sum(c.values()) for c in counts]
        return cls(vocab, indptr, np.asarray(rows, dtype=np.int32)[order],
                   np.asarray(vals, dtype=np.float32)[order],
                   np.asarray(lengths, dtype=np.float32), k1, b)

    def __post_init__(self) -> None:
        avgdl = float(self.doc_len.mean()) if len(self.doc_len) else 1.0
        # k1 * norm(d) for every document, computed once
        self.k1_norm = (self.k1 * (1 - self.b + self.b * self.doc_len / max(avgdl, 1e-9))
                        ).astype(np.float32)
        self._weights: np.ndarray | None = None

    @property
    def weights(self) -> np.ndarray:
        """(P,) float32: each posting's whole contribution idf(t) * tf / (tf + k1 * norm(d)),
        computed once for the corpus (as bm25s does at indexing), so a query only adds."""
        if self._weights is None:
            df = np.diff(self.indptr).astype(np.float64)                      # (V,)
            idf = np.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))          # (V,)
            per_posting = np.repeat(idf.astype(np.float32), np.diff(self.indptr))
            tf = self.tfs
            self._weights = (per_posting * tf / (tf + self.k1_norm[self.doc_ids])).astype(np.float32)
        return self._weights

    def idf(self, term: str) -> float:
        t = self.vocab.get(term)
        df = 0 if t is None else int(self.indptr[t + 1] - self.indptr[t])
        return float(np.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5)))

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        """(N,) float32 BM25 score of every document for the query's terms."""
        out = np.zeros(self.n_docs, dtype=np.float32)
        for term in query_terms:
            t = self.vocab.get(term)
            if t is None:
                continue
            lo, hi = self.indptr[t], self.indptr[t + 1]
            out[self.doc_ids[lo:hi]] += self.weights[lo:hi]     # ids unique within a term
        return out

    def top_k(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        """The k best (document, score) pairs with a score above zero, best first."""
        s = self.scores(tokenize(query))
        return top_k(s, k)


def top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Indices of the k largest positive scores, best first (ties: lower index first)."""
    nz = np.flatnonzero(scores > 0)
    if len(nz) > k:
        nz = nz[np.argpartition(-scores[nz], k - 1)[:k]]
    nz = nz[np.lexsort((nz, -scores[nz]))]
    return [(int(i), float(scores[i])) for i in nz[:k]]
