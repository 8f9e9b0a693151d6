"""BM25 scores equal bm25s' (Lucene variant, same k1 and b) on the same tokens."""

import sysconfig
from pathlib import Path

import numpy as np
import pytest

from groundup.rag.bm25 import BM25, tokenize, top_k
from groundup.rag.chunking import chunk_text

bm25s = pytest.importorskip("bm25s")

QUERIES = ["parse the url into parts", "return the number of items in the queue",
           "HTTPServer request handler", "zzz_unknown word", "self self return",
           "read_file lines", "CamelCase splitting"]


@pytest.fixture(scope="module")
def corpus():
    chunks = []
    for f in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:25]:
        chunks += chunk_text(f.name, f.read_text(encoding="utf-8", errors="replace"))
    return [tokenize(c.indexed_text) for c in chunks]


def test_scores_equal_bm25s(corpus):
    ours = BM25.build(corpus)
    ref = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    ref.index(corpus, show_progress=False)
    for q in QUERIES:
        terms = tokenize(q)
        known = [t for t in terms if t in ref.vocab_dict]
        theirs = ref.get_scores(known) if known else np.zeros(len(corpus))
        mine = ours.scores(terms)
        assert np.allclose(mine, theirs, rtol=1e-5, atol=1e-5), q
        assert mine.max() > 0 or not known


def test_three_documents_by_hand():
    docs = [["parse", "url"], ["parse", "json", "parse"], ["open", "file"]]
    bm = BM25.build(docs)
    avgdl = 7 / 3
    idf = np.log(1 + (3 - 2 + 0.5) / (2 + 0.5))             # "parse" is in 2 of 3
    expect = [idf * 1 / (1 + 1.5 * (0.25 + 0.75 * 2 / avgdl)),
              idf * 2 / (2 + 1.5 * (0.25 + 0.75 * 3 / avgdl)), 0.0]
    assert np.allclose(bm.scores(["parse"]), expect, rtol=1e-6)
    assert [d for d, _ in top_k(bm.scores(["parse"]), 5)] == [1, 0]


def test_code_aware_tokens():
    assert tokenize("parse_http_url") == ["parse_http_url", "parse", "http", "url"]
    assert tokenize("HTTPServer getX2Y") == ["httpserver", "http", "server", "getx2y", "get",
                                             "x", "2", "y"]
    assert tokenize("plain words of the __init__") == ["plain", "words", "__init__", "init"]
