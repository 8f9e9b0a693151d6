"""Shared fixtures for the tokenizer tests: tokenizers trained once per session."""

import pytest

from groundup.tokenizer import default_corpus_files, train_tokenizer
from groundup.tokenizer.corpus import iter_texts
from tokenizer_testdata import VARIED


@pytest.fixture(scope="session")
def corpus_files():
    return default_corpus_files()


@pytest.fixture(scope="session")
def corpus_texts(corpus_files):
    return list(iter_texts(corpus_files))


@pytest.fixture(scope="session")
def stdlib_tok(corpus_files):
    """Trained on the whole embedded corpus (a few seconds)."""
    return train_tokenizer(corpus_files, vocab_size=4096, progress=False)


@pytest.fixture(scope="session")
def small_tok(corpus_files):
    return train_tokenizer(corpus_files[:40] + VARIED, vocab_size=1000, progress=False)
