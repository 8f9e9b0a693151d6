"""Training: the incremental heap trainer equals a naive recount-every-merge BPE, and is
deterministic; bad input is refused with one clear line."""

import json
from collections import Counter
from pathlib import Path

import pytest

from groundup.errors import UserError
from groundup.tokenizer import GPT4_PATTERN, SPECIAL_TOKENS, train_tokenizer
from groundup.tokenizer.corpus import default_corpus_files, iter_texts
from groundup.tokenizer.train import count_chunks, hf_byte_order, learn_merges


def naive_bpe(chunk_counts: dict[str, int], n_tokens: int):
    """Textbook BPE: recount every pair before every merge (slow, obviously right).
    Bytes are numbered in HF's order, as learn_merges does, so ties break the same way."""
    vocab = [bytes([b]) for b in hf_byte_order()]
    index = {b: i for i, b in enumerate(vocab)}
    words = [([index[bytes([x])] for x in c.encode()], n) for c, n in chunk_counts.items()]
    merges = []
    while len(vocab) < n_tokens:
        pairs: Counter = Counter()
        for w, n in words:
            for p in zip(w, w[1:]):
                pairs[p] += n
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merged = vocab[a] + vocab[b]
        if merged not in index:
            index[merged] = len(vocab)
            vocab.append(merged)
        new = index[merged]
        merges.append((a, b, new))
        for w, _ in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i:i + 2] = [new]
                i += 1
    return vocab, merges


def test_incremental_trainer_equals_naive_bpe():
    files = default_corpus_files()[:6]
    texts = list(iter_texts(files)) + ["aaaa aaaaa abab ababab " * 5, "xyz" * 50]
    counts = count_chunks(texts, GPT4_PATTERN)
    vocab, merges = learn_merges(counts, 600)
    want_vocab, want_merges = naive_bpe(counts, 600)
    assert merges == want_merges
    assert vocab == want_vocab


@pytest.mark.parametrize("n_files, vocab_size", [(3, 600), (40, 2000)])
def test_same_merges_as_hf_bpe_trainer(n_files, vocab_size):
    """HF's BpeTrainer (Rust) with the same split learns the same tokens in the same order."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from groundup.tokenizer.bytelevel import from_bytelevel
    texts = list(iter_texts(default_corpus_files()[:n_files]))
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GPT4_PATTERN), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    hf.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_merges = [from_bytelevel(a) + from_bytelevel(b)
                 for a, b in json.loads(hf.to_str())["model"]["merges"]]
    ours = train_tokenizer(texts, vocab_size=vocab_size, progress=False)
    assert sorted(ours.vocab, key=ours.vocab.get)[256:] == hf_merges
    assert ours.vocab_size == vocab_size


def test_repeated_symbols_and_overlaps():
    # 'aaaa' holds the pair (a, a) at overlapping positions: merged left to right
    counts = {"aaaa": 3, "aaa": 2, "abab": 1}
    assert learn_merges(counts, 266) == naive_bpe(counts, 266)


def test_training_is_deterministic_and_ids_layout():
    texts = ["the cat sat on the mat " * 20, "def foo(bar): return bar\n" * 10]
    t1 = train_tokenizer(texts, vocab_size=300, progress=False)
    t2 = train_tokenizer(list(texts), vocab_size=300, progress=False)
    assert t1.vocab == t2.vocab
    assert t1.vocab_size == 300
    # bytes are ids 0..255, then merges, then the 32 specials take the last ids
    assert all(t1.vocab[bytes([i])] == i for i in range(256))
    assert t1.special_tokens == {s: 268 + i for i, s in enumerate(SPECIAL_TOKENS)}
    assert t1.bos_id == 268 and t1.eos_id == 269
    assert t1.token_to_id(" the") is not None


def test_merges_never_cross_chunks():
    tok = train_tokenizer(["ab cd " * 100], vocab_size=300, progress=False)
    for token in tok.vocab:
        assert b"b " not in token and b"b c" not in token


def test_corpus_ran_out_of_pairs(capsys):
    tok = train_tokenizer(["abc"], vocab_size=400, progress=True)
    assert tok.n_ordinary == 258 and tok.vocab_size == 290
    assert "ran out of pairs" in capsys.readouterr().err


def test_paths_directories_and_texts(tmp_path):
    (tmp_path / "a.py").write_text("import os\nprint(os.getcwd())\n" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_bytes(b"latin-1 \xe9t\xe9 " * 10)   # invalid UTF-8
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    tok = train_tokenizer([tmp_path, "some more text"], vocab_size=320, progress=False)
    assert tok.decode(tok.encode("print(os.getcwd())")) == "print(os.getcwd())"
    tok2 = train_tokenizer([str(tmp_path / "a.py")], vocab_size=300, progress=False)
    assert tok2.encode("import os") != list(b"import os")    # it learned from the file


def test_default_corpus_excludes_tests():
    files = default_corpus_files()
    assert len(files) > 300 and files == sorted(files)
    for f in files:
        assert f.suffix == ".py"
        assert not {"test", "tests", "idle_test", "site-packages"} & set(f.parts)
    assert any(f.name == "os.py" for f in files)


@pytest.mark.parametrize("kwargs, message", [
    (dict(paths_or_texts=["x" * 100], vocab_size=287), "too small"),
    (dict(paths_or_texts=[""], vocab_size=500), "empty"),
    (dict(paths_or_texts=[Path("/no/such/dir")], vocab_size=500), "does not exist"),
    (dict(paths_or_texts=["abc"], vocab_size=500, pattern="(unclosed"), "not a valid regex"),
])
def test_bad_input_is_a_user_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        train_tokenizer(progress=False, **kwargs)


def test_empty_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no text files"):
        train_tokenizer([tmp_path], vocab_size=500, progress=False)


def test_custom_pattern_changes_chunks():
    # split on single characters only: no merge can ever happen
    tok = train_tokenizer(["hello hello hello"], vocab_size=300, pattern=r".", progress=False)
    assert tok.n_ordinary == 256
    assert tok.encode("hello") == list(b"hello")


def test_generated_tables_are_the_codec_charmaps_and_pydoc_topics_only():
    """The corpus lever `Preset.corpus_skip_tables`: what it drops is generated data, never code
    -- the charmap codecs (cp1252.py ...) and pydoc's topics, not utf_8.py, aliases.py or idna.py."""
    from dataclasses import replace

    from groundup.speedrun.pipeline import corpus_files
    from groundup.speedrun.presets import PRESETS
    from groundup.tokenizer.corpus import is_generated_table
    files = default_corpus_files()
    tables = {f.relative_to(f.parent.parent).as_posix() for f in files if is_generated_table(f)}
    assert {"encodings/cp1252.py", "encodings/mac_roman.py", "pydoc_data/topics.py"} <= tables
    assert not {"encodings/utf_8.py", "encodings/aliases.py", "encodings/idna.py",
                "encodings/__init__.py"} & tables
    assert all(t.startswith(("encodings/", "pydoc_data/")) for t in tables)
    cpu = PRESETS["cpu"]
    assert cpu.corpus_skip_tables is False and len(corpus_files(cpu)) == len(files)
    kept = corpus_files(replace(cpu, corpus_skip_tables=True))
    assert len(kept) == len(files) - len(tables) and not any(map(is_generated_table, kept))
