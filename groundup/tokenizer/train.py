"""Byte-level BPE training: chunk counts, incremental pair counts, a heap with lazy refresh.

The algorithm (the one that makes HF's BpeTrainer and rustbpe fast), in four steps:

1. Pre-tokenize: split every text with the regex into chunks and count *unique* chunks. Merges
   never cross chunk boundaries, so the corpus (~2.7M chunks for the stdlib) collapses into a
   few ten thousand distinct "words" with a count each; the corpus is never rescanned.
2. Count every adjacent pair of tokens once, weighted by word count, and remember which words
   hold each pair (`where`).
3. Pop the most frequent pair from a max-heap. Counts only *drop* for existing pairs (a merge
   removes its neighbours' pairs) and new pairs always contain the new token, so the heap is
   refreshed lazily: an entry whose count is stale is pushed back with its current count, and
   every pair that a merge creates or increases is pushed fresh.
4. Merge: rewrite only the words in `where[pair]`, updating neighbour pair counts in place.

Design choices:
- In the result, ids 0..255 are the raw bytes and merged tokens take 256, 257, ... in the
  order they were made: the ordinary ids are exactly tiktoken's `mergeable_ranks`, and the
  32 special tokens take the last ids.
- Deterministic, and the same as HF's BpeTrainer merge for merge: ties on count go to the
  smallest pair of ids, with the bytes numbered as HF numbers them (sorted by their GPT-2
  printable character) during training. Tests check the merge lists are identical.
- If a merge produces bytes that already are a token (two words reached "abc" as ab+c and as
  a+bc), the existing id is reused and no new id is spent, as HF's trainer does: every token's
  bytes stay unique, which tiktoken requires.
- Pairs are kept as one int `left << 32 | right`: hashing an int is much cheaper than a tuple.
"""

from __future__ import annotations

import heapq
import sys
from collections import Counter
from typing import Iterable

import regex

from groundup.errors import UserError
from groundup.tokenizer.corpus import iter_texts
from groundup.tokenizer.bytelevel import bytes_to_unicode
from groundup.tokenizer.special import SPECIAL_TOKENS
from groundup.tokenizer.tokenizer import GPT4_PATTERN, Tokenizer

SHIFT = 32
LOW = (1 << SHIFT) - 1


def count_chunks(texts: Iterable[str], pattern: str, progress=None) -> Counter:
    """Split each text with the pre-tokenization regex; count each distinct chunk."""
    split = regex.compile(pattern).findall
    counts: Counter = Counter()
    for text in texts:
        counts.update(split(text))
        if progress is not None:
            progress(len(text))
    return counts


def hf_byte_order() -> list[int]:
    """The 256 bytes in the order HF's BpeTrainer numbers them: by their GPT-2 character."""
    m = bytes_to_unicode()
    return sorted(range(256), key=lambda b: m[b])


def learn_merges(chunk_counts: dict[str, int], n_tokens: int, progress=None
                 ) -> tuple[list[bytes], list[tuple[int, int, int]]]:
    """Run BPE on counted chunks until there are `n_tokens` tokens (or no pair is left).

    Internally the bytes are numbered in HF's order (`hf_byte_order`), so that "smallest pair
    wins a tie" means what it means in HF's BpeTrainer. Returns (token bytes by internal id,
    [(left, right, new) internal ids, ...]); ids >= 256 are in creation order."""
    order = hf_byte_order()
    vocab = [bytes([b]) for b in order]
    index = {b: i for i, b in enumerate(vocab)}
    to_id = [index[bytes([b])] for b in range(256)]
    words = [[to_id[x] for x in chunk.encode("utf-8")] for chunk in chunk_counts]
    counts = list(chunk_counts.values())

    # pair counts and the words that (may) hold each pair; `where` is never pruned: a word
    # listed for a pair it lost is simply found to hold no occurrence when it is rewritten
    pc: dict[int, int] = {}
    where: dict[int, set[int]] = {}
    for wi, (w, c) in enumerate(zip(words, counts)):
        for a, b in zip(w, w[1:]):
            key = a << SHIFT | b
            pc[key] = pc.get(key, 0) + c
            s = where.get(key)
            if s is None:
                where[key] = {wi}
            else:
                s.add(wi)
    heap = [(-c, key) for key, c in pc.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int, int]] = []
    while len(vocab) < n_tokens and heap:
        neg, key = heapq.heappop(heap)
        current = pc.get(key, 0)
        if current != -neg:            # stale entry: counts only fell since it was pushed
            if current > 0:
                heapq.heappush(heap, (-current, key))
            continue
        a, b = key >> SHIFT, key & LOW
        merged = vocab[a] + vocab[b]
        n = index.get(merged)
        if n is None:                  # a new token (the usual case)
            n = len(vocab)
            vocab.append(merged)
            index[merged] = n
        merges.append((a, b, n))

        touched: set[int] = set()      # pairs containing n whose counts rose
        for wi in where.pop(key):
            w = words[wi]
            if a not in w:
                continue
            c = counts[wi]
            L = len(w)
            new: list[int] = []
            i = 0
            while i < L:
                if w[i] == a and i + 1 < L and w[i + 1] == b:
                    # a neighbour on the left loses (x, a) and gains (x, n); if x is an n made
                    # a moment ago in this word, its provisional (n, a) is undone here
                    if new:
                        x = new[-1]
                        k = x << SHIFT | a
                        pc[k] -= c
                        k = x << SHIFT | n
                        pc[k] = pc.get(k, 0) + c
                        touched.add(k)
                        where.setdefault(k, set()).add(wi)
                    if i + 2 < L:
                        y = w[i + 2]
                        k = b << SHIFT | y
                        pc[k] -= c
                        k = n << SHIFT | y
                        pc[k] = pc.get(k, 0) + c
                        touched.add(k)
                        where.setdefault(k, set()).add(wi)
                    new.append(n)
                    i += 2
                else:
                    new.append(w[i])
                    i += 1
            words[wi] = new
        pc.pop(key, None)
        for k in touched:
            c = pc.get(k, 0)
            if c > 0:
                heapq.heappush(heap, (-c, k))
        if progress is not None:
            progress(len(vocab) - 256)
    return vocab, merges


class _Progress:
    """A rich progress bar on stderr (only when stderr is a terminal), or nothing."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=False)

    def __enter__(self):
        if self.bar is not None:
            from rich.errors import LiveError
            try:
                self.bar.__enter__()
            except LiveError:    # a caller's own live display is active: train without a bar
                self.bar = None
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def task(self, description: str, total: int, every: int = 1):
        """A callback `update(done)` taking the absolute amount done (None: no bar)."""
        if self.bar is None:
            return None
        tid = self.bar.add_task(description, total=total)
        bar = self.bar
        state = {"last": 0}

        def absolute(done: int) -> None:
            if done - state["last"] >= every or done == total:
                state["last"] = done
                bar.update(tid, completed=done)
        return absolute


def train_tokenizer(paths_or_texts, vocab_size: int = 8192, pattern: str | None = None,
                    progress: bool = True) -> Tokenizer:
    """Train a byte-level BPE tokenizer. `vocab_size` counts the 256 bytes, the merges and the
    special tokens (which take the last ids). Paths may be files or directories."""
    pattern = pattern or GPT4_PATTERN
    n_special = len(SPECIAL_TOKENS)
    if vocab_size < 256 + n_special:
        raise UserError(f"vocab size {vocab_size} is too small: it must be at least "
                        f"{256 + n_special} (256 bytes + {n_special} special tokens)")
    try:
        regex.compile(pattern)
    except regex.error as e:
        raise UserError(f"the split pattern is not a valid regex: {e}") from None
    texts = list(iter_texts(paths_or_texts))
    total_chars = sum(map(len, texts))
    if total_chars == 0:
        raise UserError("the training corpus is empty -- give files or texts with some content")
    n_merges = vocab_size - 256 - n_special
    with _Progress(progress) as bar:
        done = {"chars": 0}
        tick = bar.task("pre-tokenizing", total_chars, every=1 << 20)

        def on_text(n: int) -> None:
            done["chars"] += n
            if tick is not None:
                tick(done["chars"])
        chunk_counts = count_chunks(texts, pattern, on_text)
        del texts
        vocab, _ = learn_merges(chunk_counts, 256 + n_merges,
                                bar.task("merging", n_merges, every=64))
    if len(vocab) < 256 + n_merges and progress:
        print(f"note: the corpus ran out of pairs to merge after {len(vocab) - 256} merges; "
              f"vocab size is {len(vocab) + n_special}, not {vocab_size}", file=sys.stderr)
    # tiktoken's layout: byte b is id b, then the merged tokens in the order they were made
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b: i for i, b in enumerate(vocab) if i >= 256})
    specials = {s: len(vocab) + i for i, s in enumerate(SPECIAL_TOKENS)}
    return Tokenizer.from_ranks(ranks, pattern=pattern, special_tokens=specials)

