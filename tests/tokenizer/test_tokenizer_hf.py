"""Parity with Hugging Face `tokenizers`: tokenizer.json files the test builds itself (GPT-2,
Qwen2 and Llama 3 style) encode to the same ids in ours; ours exported as tokenizer.json
encodes the same in `tokenizers` and `transformers`."""

import json
import random

import pytest
from tokenizer_testdata import VARIED
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, trainers

from groundup.errors import UserError
from groundup.tokenizer import GPT4_PATTERN, load_tokenizer
from groundup.tokenizer.formats import from_hf_json

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def hf_train(texts, pre_tokenizer, normalizer=None, specials=(), vocab_size=700):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=list(specials))
    tok.train_from_iterator(texts, trainer)
    return tok


@pytest.fixture(scope="module")
def train_texts(corpus_texts):
    return corpus_texts[:25] + VARIED


@pytest.fixture(scope="module")
def sample_texts(corpus_texts):
    return VARIED + [t[:3000] for t in corpus_texts[100:400:10]]


@pytest.fixture(scope="module")
def hf_cases(train_texts):
    """name -> an HF Tokenizer, one per style the loader must get exactly right."""
    gpt2 = hf_train(train_texts, pre_tokenizers.ByteLevel(add_prefix_space=False),
                    specials=["<|endoftext|>"])
    gpt2_prefix = hf_train(train_texts, pre_tokenizers.ByteLevel(add_prefix_space=True))
    split = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_PATTERN), "isolated"),
                                     pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                              use_regex=False)])
    qwen2 = hf_train(train_texts, split, normalizer=normalizers.NFC(),
                     specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    qwen2.add_tokens([AddedToken("<think>", special=False, normalized=False),
                      AddedToken(" magic_word", special=False, normalized=False)])
    qwen2.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True)])
    llama3_split = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GPT4_PATTERN), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    llama3 = hf_train(train_texts, llama3_split,
                      specials=["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"])
    obj = json.loads(llama3.to_str())
    obj["model"]["ignore_merges"] = True                  # as Llama 3's file sets it
    llama3 = Tokenizer.from_str(json.dumps(obj))
    # ids that do not follow merge order: shuffle every id of the GPT-2 one
    obj = json.loads(gpt2.to_str())
    ids = list(range(len(obj["model"]["vocab"])))
    random.Random(0).shuffle(ids)
    obj["model"]["vocab"] = {s: ids[i] for s, i in obj["model"]["vocab"].items()}
    for t in obj["added_tokens"]:
        t["id"] = ids[t["id"]]
    shuffled = Tokenizer.from_str(json.dumps(obj))
    # StarCoder / SmolLM style: every digit its own chunk, then GPT-2's byte-level split
    digits = hf_train(train_texts, pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]))
    return {"gpt2": gpt2, "gpt2_prefix": gpt2_prefix, "qwen2": qwen2, "llama3": llama3,
            "shuffled_ids": shuffled, "digits": digits}


CASES = ["gpt2", "gpt2_prefix", "qwen2", "llama3", "shuffled_ids", "digits"]


def ours_from(hf: Tokenizer):
    return from_hf_json(json.loads(hf.to_str()))


_OURS_CACHE = {}


def ours_from_cached(hf):
    """One conversion per HF tokenizer (hypothesis calls a test many times)."""
    if id(hf) not in _OURS_CACHE:
        _OURS_CACHE[id(hf)] = ours_from(hf)
    return _OURS_CACHE[id(hf)]


_EXPORTED = {}


def _exported(tok):
    """Our tokenizer, exported and loaded back in `tokenizers` (once per tokenizer)."""
    if id(tok) not in _EXPORTED:
        from groundup.tokenizer.export import to_hf_json
        _EXPORTED[id(tok)] = Tokenizer.from_str(json.dumps(to_hf_json(tok)))
    return _EXPORTED[id(tok)]


@pytest.mark.parametrize("name", CASES)
def test_loaded_tokenizer_json_encodes_like_tokenizers(hf_cases, sample_texts, name):
    hf = hf_cases[name]
    ours = ours_from(hf)
    assert not ours.fast and ours.merge_rule == "pair"
    for text in sample_texts:
        want = hf.encode(text, add_special_tokens=False).ids
        assert ours.encode(text, allowed_special="all") == want, text[:80]
        assert ours.decode(want) == hf.decode(want, skip_special_tokens=False)


@settings(max_examples=150, deadline=None)
@given(text=TEXT)
def test_hypothesis_parity_with_tokenizers(hf_cases, text):
    for name in CASES:
        hf = hf_cases[name]
        ours = ours_from_cached(hf)
        assert ours.encode(text, "all") == hf.encode(text, add_special_tokens=False).ids, name


def test_added_tokens(hf_cases):
    hf, ours = hf_cases["qwen2"], ours_from(hf_cases["qwen2"])
    text = "a<think>b magic_word  <mask>  c<|im_start|>user\nhi<|im_end|>"
    want = hf.encode(text, add_special_tokens=False).ids
    assert ours.encode(text, "all") == want
    assert hf.token_to_id("<think>") in want and hf.token_to_id("<mask>") in want
    # without permission, special tokens are text -- but non-special added ones still match
    plain = ours.encode(text)
    assert hf.token_to_id("<|im_start|>") not in plain and hf.token_to_id("<mask>") not in plain
    assert hf.token_to_id("<think>") in plain
    assert ours.token_to_id("<|im_end|>") == hf.token_to_id("<|im_end|>")
    # a space-prefixed word (the vocab is a hash map: its order differs between processes, so
    # pick deterministically, and a token whose only byte-mapped character is the space)
    some = min(t for t in hf.get_vocab() if t.startswith("Ġ") and t[1:].isalpha() and len(t) > 2)
    assert ours.token_to_id(some) == hf.token_to_id(some)
    assert ours.token_to_id(some.replace("Ġ", " ")) == hf.token_to_id(some)


def test_normalized_and_raw_added_tokens(train_texts):
    """NFKC turns the ligature 'ﬁ' into 'fi': a normalized=True token is found after that,
    a normalized=False one only as written in the raw text."""
    hf = hf_train(train_texts, pre_tokenizers.ByteLevel(add_prefix_space=False),
                  normalizer=normalizers.NFKC())
    hf.add_tokens([AddedToken("fi!", normalized=True), AddedToken("ﬁ?", normalized=False)])
    ours = ours_from(hf)
    for text in ["aﬁ! bﬁ? cfi! dfi? ﬁ!ﬁ?", "x ﬁ", "ﬁ?fi!", "²³ ﬀ Ⅻ"]:
        assert ours.encode(text) == hf.encode(text, add_special_tokens=False).ids, text
    fi_bang, lig_q = hf.token_to_id("fi!"), hf.token_to_id("ﬁ?")
    assert ours.encode("aﬁ!").count(fi_bang) == 1 and ours.encode("afi!").count(fi_bang) == 1
    assert ours.encode("aﬁ?").count(lig_q) == 1 and lig_q not in ours.encode("afi?")


def test_pair_rule_is_not_the_rank_rule():
    """HF merges by pair priority: with merges (b,c) then (a,b) then (ab,c), 'abc' ends as
    a + bc (a+bc is not a merge), although 'abc' is a token -- tiktoken's rule would give abc."""
    vocab = {"a": 0, "b": 1, "c": 2, "bc": 3, "ab": 4, "abc": 5}
    obj = {"model": {"type": "BPE", "vocab": vocab, "merges": ["b c", "a b", "ab c"]},
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                             "trim_offsets": True, "use_regex": True},
           "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                       "use_regex": True}, "added_tokens": []}
    hf = Tokenizer.from_str(json.dumps(obj))
    ours = from_hf_json(obj)
    assert hf.encode("abc").ids == [0, 3] == ours.encode("abc")
    assert hf.encode("ab").ids == [4] == ours.encode("ab")


def test_export_is_identical_in_tokenizers(stdlib_tok, corpus_texts, tmp_path):
    stdlib_tok.save(tmp_path)
    hf = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    texts = VARIED + corpus_texts[::12]
    got = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    assert got == stdlib_tok.encode_batch(texts, allowed_special="all")
    assert hf.get_vocab_size() == stdlib_tok.vocab_size
    # and loading that tokenizer.json alone recognises it as ours: the fast path applies
    again = load_tokenizer(tmp_path / "tokenizer.json")
    assert again.fast and again.vocab == stdlib_tok.vocab
    assert again.bos_id == stdlib_tok.bos_id


@pytest.mark.slow
def test_export_is_identical_in_tokenizers_on_whole_corpus(stdlib_tok, corpus_texts, tmp_path):
    stdlib_tok.save(tmp_path)
    hf = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    got = [e.ids for e in hf.encode_batch(corpus_texts, add_special_tokens=False)]
    assert got == stdlib_tok.encode_batch(corpus_texts)


@settings(max_examples=150, deadline=None)
@given(text=TEXT)
def test_export_hypothesis_parity(small_tok, text):
    hf = _exported(small_tok)
    assert hf.encode(text, add_special_tokens=False).ids == small_tok.encode(text, "all")


def test_transformers_loads_our_directory(small_tok, tmp_path):
    from transformers import AutoTokenizer
    small_tok.save(tmp_path)
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    for text in VARIED:
        assert hf.encode(text, add_special_tokens=False) == small_tok.encode(text, "all")
    assert hf.bos_token == "<|begin_of_text|>" and hf.eos_token == "<|end_of_text|>"
    assert hf.convert_tokens_to_ids("<|user|>") == small_tok.special_tokens["<|user|>"]


def test_model_directory_with_tokenizer_config(hf_cases, tmp_path):
    hf_cases["qwen2"].save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": None, "eos_token": {"content": "<|im_end|>"},
        "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}))
    (tmp_path / "config.json").write_text("{}")
    tok = load_tokenizer(tmp_path)
    assert tok.eos_id == hf_cases["qwen2"].token_to_id("<|im_end|>") and tok.bos_id is None
    assert "messages" in tok.chat_template
    # saving a loaded HF tokenizer writes its tokenizer.json back unchanged
    out = tmp_path / "copy"
    tok.save(out)
    again = load_tokenizer(out)
    assert again.encode("x <|im_end|>", "all") == tok.encode("x <|im_end|>", "all")
    assert again.eos_id == tok.eos_id


def test_unsupported_files_say_what(tmp_path):
    wp = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    wp.save(str(tmp_path / "wp.json"))
    with pytest.raises(UserError, match="unsupported tokenizer model type 'WordPiece'"):
        load_tokenizer(tmp_path / "wp.json")
    sp = Tokenizer(models.BPE({"▁a": 0, "a": 1, "▁": 2}, [("▁", "a")], byte_fallback=True))
    sp.pre_tokenizer = pre_tokenizers.Metaspace()
    sp.save(str(tmp_path / "sp.json"))
    with pytest.raises(UserError, match="pre-tokenizer 'Metaspace'"):
        load_tokenizer(tmp_path / "sp.json")
    (tmp_path / "nomodel.json").write_text("{}")
    with pytest.raises(UserError, match="no \"model\" section"):
        load_tokenizer(tmp_path / "nomodel.json")


def _token_soup(token_bytes: list[bytes], n: int, seed: int) -> list[str]:
    """Strings glued from 2-5 random multi-byte tokens: chunks where a token can be spelled
    in several ways, which is exactly where BPE rules (pair vs rank) could disagree."""
    rng = random.Random(seed)
    toks = [t for t in token_bytes if len(t) > 1]
    return [b"".join(rng.choice(toks) for _ in range(rng.randint(2, 5))).decode("utf-8", "replace")
            for _ in range(n)]


@pytest.mark.parametrize("name", ["gpt2", "llama3", "qwen2"])
def test_token_soup_parity_loaded(hf_cases, name):
    hf = hf_cases[name]
    ours = ours_from_cached(hf)
    texts = _token_soup(list(ours.vocab), 3000, seed=1)
    want = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    assert [ours.encode(t, "all") for t in texts] == want


def test_token_soup_parity_exported(stdlib_tok):
    hf = _exported(stdlib_tok)
    texts = _token_soup(list(stdlib_tok.vocab), 5000, seed=2)
    want = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    assert stdlib_tok.encode_batch(texts) == want
    assert [stdlib_tok.encode_reference(t) for t in texts] == want


def test_long_chunks_pair_rule(hf_cases):
    for name in ("gpt2", "llama3"):
        hf, ours = hf_cases[name], ours_from_cached(hf_cases[name])
        for text in ["a" * 20000, " " * 20000 + "x", "ab" * 10000, "self" * 3000]:
            assert ours.encode(text) == hf.encode(text, add_special_tokens=False).ids
