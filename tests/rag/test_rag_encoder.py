"""Our WordPiece + BERT forward + pooling give sentence-transformers' vectors on the same weights."""

import numpy as np
import pytest

from groundup.rag.encoder import Embedder

st = pytest.importorskip("sentence_transformers")

SENTENCES = [
    "def parse_url(s: str) -> dict:\n    \"\"\"Split a URL into its parts.\"\"\"\n    return {}",
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé: 北京欢迎你, café, ΣΑΣ, emoji 🙂",
    "",
    "class HTTPServer(socketserver.TCPServer):\n    allow_reuse_address = 1",
    "retry the request with exponential backoff " * 80,      # over 256 tokens: truncated
    "x",
    "[MASK] written literally",
]


def _compare(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    # float32 matmuls in a different order (fused QKV, another SDPA kernel): ~1e-7 apart
    assert np.abs(ours - theirs).max() < 1e-5
    cos = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    assert cos.min() >= 0.99999


def test_minilm_vectors_equal_sentence_transformers(minilm_dir):
    ref = st.SentenceTransformer(str(minilm_dir), device="cpu")
    ours = Embedder(minilm_dir)
    assert ours.max_length == ref.max_seq_length == 256 and ours.dim == 384
    theirs = ref.encode(SENTENCES, batch_size=3, convert_to_numpy=True)
    mine = ours.embed(SENTENCES, batch_size=3)
    _compare(mine, theirs)
    assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-6)
    # batching and length sorting do not change a vector
    one_by_one = np.stack([ours.embed([s])[0] for s in SENTENCES])
    assert np.abs(one_by_one - mine).max() < 1e-5


def test_any_bert_directory_loads_by_path(tiny_bert_dir):
    ref = st.SentenceTransformer(str(tiny_bert_dir), device="cpu")
    ours = Embedder(tiny_bert_dir)
    assert ours.dim == 32 and ours.max_length == 64
    _compare(ours.embed(SENTENCES), ref.encode(SENTENCES, convert_to_numpy=True))


def test_bad_directories_are_clear_errors(tmp_path):
    from groundup.errors import UserError
    with pytest.raises(UserError, match="not a model directory"):
        Embedder(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(UserError, match="not BERT"):
        Embedder(tmp_path)
