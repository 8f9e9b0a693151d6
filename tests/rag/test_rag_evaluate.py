"""The CodeSearchNet-style retrieval task: pairs built right, metrics right, methods compared."""

import subprocess
import sys

from groundup.rag.encoder import Embedder
from groundup.rag.evaluate import build_pairs, evaluate, metrics, pairs_from_source
from groundup.tokenizer.corpus import default_corpus_files

SRC = '''
class Box:
    def size(self):
        """Return the number of items in the box.

        More text that is not the query.
        """
        n = len(self.items)
        return n + 0


def tiny():
    """Too short."""
    return 1
'''


def test_pairs_cut_the_docstring_out():
    (pair,) = pairs_from_source(SRC, "box.py")
    assert pair.query == "Return the number of items in the box."
    assert "Return the number" not in pair.code and "More text" not in pair.code
    assert pair.code.strip().startswith("def size(self):") and "len(self.items)" in pair.code
    assert pair.where == "box.py:3"


def test_metrics_by_hand():
    m = metrics([1, 2, None, 10])
    assert abs(m["mrr@10"] - (1 + 0.5 + 0 + 0.1) / 4) < 1e-12
    assert m["recall@1"] == 0.25 and m["recall@10"] == 0.75


def test_bm25_dense_hybrid_on_stdlib_pools(tiny_bert_dir):
    pairs = build_pairs(default_corpus_files()[:150])
    result = evaluate(pairs, pool_size=100, pools=1, embedder=Embedder(tiny_bert_dir))
    methods = result["methods"]
    assert set(methods) == {"bm25", "dense", "hybrid", "hybrid-1:1", "dense-f16"}
    # BM25 on real docstrings vs code is far better than chance (10 / 100 at rank <= 10)
    assert methods["bm25"]["recall@10"] > 0.4 and methods["bm25"]["mrr@10"] > 0.2
    for v in methods.values():
        assert 0 <= v["recall@1"] <= v["recall@10"] <= 1


def test_cli_bm25_only():
    p = subprocess.run([sys.executable, "-m", "groundup", "eval", "retrieval", "--embedder",
                        "none", "--pool-size", "200", "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    import json
    out = json.loads(p.stdout)
    assert out["queries"] == 200 and set(out["methods"]) == {"bm25"}
