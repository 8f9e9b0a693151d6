"""Shared fixtures for the training tests: a small real corpus and a tokenizer trained on it."""

import json
import shutil
from pathlib import Path

import pytest

from groundup.tokenizer import train_tokenizer

CORPUS_MODULES = ["json", "email/mime", "wsgiref"]   # small stdlib packages: ~100 KB of Python


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    stdlib = Path(json.__file__).parent.parent
    d = tmp_path_factory.mktemp("corpus")
    for m in CORPUS_MODULES:
        for f in sorted((stdlib / m).glob("*.py")):
            shutil.copy(f, d / f"{m.replace('/', '_')}_{f.name}")
    return d


@pytest.fixture(scope="session")
def tok_dir(corpus_dir, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tok")
    train_tokenizer([corpus_dir], vocab_size=384, progress=False).save(d)
    return d
