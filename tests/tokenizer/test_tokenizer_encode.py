"""Encoding and decoding: the tiktoken fast path equals the plain-Python reference on the whole
embedded corpus; round trips hold for arbitrary Unicode; special tokens need permission."""

import pytest
from tokenizer_testdata import VARIED
from hypothesis import given, settings
from hypothesis import strategies as st

from groundup.errors import UserError
from groundup.tokenizer import load_tokenizer

# arbitrary Unicode (no lone surrogates: they are not encodable text), mixed with the
# fragments that break tokenizers: emoji, combining marks, CJK, whitespace runs, CRLF, NUL
FRAGMENTS = ["😀", "👨‍👩‍👧", "e\u0301", "\u0300\u0301", "日本語", "中文", "   ", "\t\t",
             " " * 17, "\r\n", "\n\n\n", "\x00", "'s", "'LL", "123456", "<|user|>",
             "<|end_of_text|>", "def ", "  return", "\u00a0", "\u3000", "ﬁ"]
TEXT = st.lists(st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
                          st.sampled_from(FRAGMENTS)), max_size=24).map("".join)


def test_fast_path_equals_reference_on_whole_corpus(stdlib_tok, corpus_texts):
    assert stdlib_tok.fast
    fast = stdlib_tok.encode_batch(corpus_texts)
    for text, ids in zip(corpus_texts, fast):
        assert stdlib_tok.encode_reference(text) == ids
    # and the corpus round-trips
    assert all(stdlib_tok.decode(ids) == text for text, ids in zip(corpus_texts, fast))
    n_bytes = sum(len(t.encode()) for t in corpus_texts)
    assert n_bytes / sum(map(len, fast)) > 3.0          # it actually compresses code


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_round_trip_and_fast_equals_reference(small_tok, text):
    ids = small_tok.encode(text)
    assert small_tok.decode(ids) == text
    assert small_tok.encode_reference(text) == ids
    assert all(0 <= i < small_tok.n_ordinary for i in ids)   # no special from plain text
    every = small_tok.encode(text, allowed_special="all")
    assert small_tok.encode_reference(text, "all") == every
    assert small_tok.decode(every) == text


def test_varied_texts(small_tok):
    for text in VARIED:
        ids = small_tok.encode(text)
        assert ids == small_tok.encode_reference(text)
        assert small_tok.decode(ids) == text
    assert small_tok.encode("") == [] and small_tok.decode([]) == ""


def test_special_tokens_only_when_allowed(small_tok):
    text = "hi<|user|>there<|end_of_turn|>"
    user, eot = small_tok.special_tokens["<|user|>"], small_tok.special_tokens["<|end_of_turn|>"]
    plain = small_tok.encode(text)
    assert user not in plain and eot not in plain
    assert small_tok.decode(plain) == text
    some = small_tok.encode(text, allowed_special={"<|user|>"})
    assert user in some and eot not in some
    both = small_tok.encode(text, allowed_special="all")
    assert both == small_tok.encode("hi") + [user] + small_tok.encode("there") + [eot]
    assert small_tok.encode_reference(text, allowed_special={"<|user|>"}) == some
    assert small_tok.decode(both) == text
    assert small_tok.token_to_id("<|user|>") == user
    with pytest.raises(UserError, match="not special tokens"):
        small_tok.encode(text, allowed_special={"<|nope|>"})


def test_encode_batch_matches_encode(small_tok):
    texts = VARIED * 3
    assert small_tok.encode_batch(texts) == [small_tok.encode(t) for t in texts]
    assert (small_tok.encode_batch(texts, allowed_special="all")
            == [small_tok.encode(t, allowed_special="all") for t in texts])


def test_decode_invalid_utf8_never_raises(small_tok):
    ids = small_tok.encode("日本😀")
    raw = small_tok.decode_bytes(ids)
    assert raw == "日本😀".encode()
    # cut a character in half at every byte boundary: decoding gives U+FFFD, not an error
    byte_ids = [small_tok.vocab[bytes([b])] for b in raw]
    for cut in range(1, len(byte_ids)):
        text = small_tok.decode(byte_ids[:cut])
        assert isinstance(text, str)
    assert small_tok.decode(byte_ids[:1]) == "\ufffd"
    assert small_tok.decode([small_tok.vocab[b"\xff"]]) == "\ufffd"


def test_decode_unknown_id_is_replacement_but_strict_lookup_raises(small_tok):
    a = small_tok.encode("a")
    for bad in (small_tok.vocab_size, 10**9, -1):
        assert small_tok.decode(a + [bad] + a) == "a\ufffda"
        with pytest.raises(UserError, match="not in this tokenizer"):
            small_tok.id_to_bytes(bad)


def test_save_load_round_trip(small_tok, tmp_path):
    (tmp_path / "config.json").write_text('{"keep": true}')       # a model's file stays
    small_tok.save(tmp_path)
    assert (tmp_path / "config.json").read_text() == '{"keep": true}'
    tok = load_tokenizer(tmp_path)
    assert tok.fast and tok.vocab == small_tok.vocab
    assert tok.special_tokens == small_tok.special_tokens
    assert (tok.bos_id, tok.eos_id) == (small_tok.bos_id, small_tok.eos_id)
    for text in VARIED:
        assert tok.encode(text, "all") == small_tok.encode(text, "all")
    # the ranks file is tiktoken's own format
    from tiktoken.load import load_tiktoken_bpe
    assert load_tiktoken_bpe(str(tmp_path / "tokenizer.tiktoken")) == small_tok.vocab


def test_load_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_tokenizer(tmp_path / "missing")
    with pytest.raises(UserError, match="holds no tokenizer.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_tokenizer(tmp_path)


def test_long_chunks(small_tok):
    """Chunks thousands of bytes long (whitespace runs, repeated letters) -- the reference
    merges them with a heap, and must still agree with tiktoken."""
    for text in ["a" * 20000, " " * 20000 + "x", "ab" * 10000, "\n" * 5000, "é" * 5000,
                 "=" * 3000 + "\n" + "\t" * 3000]:
        ids = small_tok.encode(text)
        assert small_tok.encode_reference(text) == ids
        assert small_tok.decode(ids) == text
