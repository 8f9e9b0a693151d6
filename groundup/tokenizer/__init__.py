"""Byte-level BPE tokenizer, from scratch: train, encode (reference + tiktoken fast path),
decode, save/load, and Hugging Face tokenizer.json import/export. See docs/01-tokenizer.md."""

from groundup.tokenizer.corpus import default_corpus_files
from groundup.tokenizer.formats import load_tokenizer
from groundup.tokenizer.special import SPECIAL_TOKENS
from groundup.tokenizer.tokenizer import GPT2_PATTERN, GPT4_PATTERN, Tokenizer
from groundup.tokenizer.train import train_tokenizer

__all__ = ["Tokenizer", "load_tokenizer", "train_tokenizer", "default_corpus_files",
           "SPECIAL_TOKENS", "GPT4_PATTERN", "GPT2_PATTERN"]
