"""WordPiece ids equal Hugging Face `tokenizers`' on the shipped BERT tokenizer.json."""

import random

import pytest

from groundup.rag.wordpiece import WordPiece

tokenizers = pytest.importorskip("tokenizers")

VARIED = [
    "Hello, world!", "def parse_url(s: str) -> dict:\n    return {'a': s[1:]}",
    "Ünïcödé façade café naïve résumé", "北京欢迎你 and 東京 mixed", "emoji 🙂🚀 and ✓",
    "", "   \t\n", "[CLS] literal [MASK] specials[SEP]", "a\x00b\x0bc\x85d\u2028e\ufeff f",
    "İstanbul ǅ ﬁ straße ΣΑΣ", "x" * 150, "tab\tsep\r\nline", "zero\u200bwidth",
    "HTTPServer.get_request_handler(self, *args, **kwargs)", "1.5e-3 + 0x1F == ~a",
]


def _random_texts(n, seed=0):
    rng = random.Random(seed)
    alphabet = [chr(c) for c in [*range(0, 0x250), *range(0x370, 0x400), *range(0x2000, 0x2070),
                                 *range(0x3000, 0x3040), *range(0x4E00, 0x4E40),
                                 *range(0x1F600, 0x1F610), 0xFFFD, 0xFEFF, 0x200D]]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(n)]


@pytest.fixture(scope="module")
def pair(minilm_dir):
    hf = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    hf.no_padding()
    hf.no_truncation()
    return hf, WordPiece.from_dir(minilm_dir)


def test_ids_equal_hf_tokenizers(pair):
    hf, ours = pair
    for text in VARIED + _random_texts(1500):
        assert ours.encode(text) == hf.encode(text).ids, repr(text)


def test_truncation_like_hf(pair):
    hf, ours = pair
    hf.enable_truncation(256)
    try:
        text = "word " * 400 + "def f(x): return x"
        ids = ours.encode(text, max_length=256)
        assert ids == hf.encode(text).ids and len(ids) == 256 and ids[-1] == ours.sep_id
    finally:
        hf.no_truncation()


def test_stdlib_source_equal(pair):
    import sysconfig
    from pathlib import Path
    hf, ours = pair
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:8]
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        assert ours.encode(text) == hf.encode(text).ids, f.name


def test_vocab_txt_loads_the_same(tmp_path, minilm_dir, pair):
    import shutil
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm_dir / name, tmp_path / name)
    from_vocab = WordPiece.from_dir(tmp_path)
    _, ours = pair
    for text in VARIED:
        assert from_vocab.encode(text) == ours.encode(text)


def test_pieces_readable(pair):
    _, ours = pair
    assert ours.tokens("Tokenizers split words") == ["[CLS]", "token", "##izer", "##s", "split",
                                                     "words", "[SEP]"]
