"""The Tokenizer: text <-> ids for byte-level BPE, with a reference encoder and a fast path.

Design choices:
- Tokens are *bytes*. The vocabulary maps each token's bytes to its id; GPT-2's printable
  byte-to-unicode alphabet ("Ġthe") exists only at the tokenizer.json boundary (bytelevel.py,
  read by formats.py, written by export.py).
- Two merge rules exist in the wild, and a Tokenizer carries one of them:
  * "rank" (tiktoken, and our own trained tokenizers): a chunk that is itself a token is one
    token; otherwise repeatedly merge the adjacent pair whose *concatenated bytes* have the
    lowest rank (id), leftmost first.
  * "pair" (HF `tokenizers` BPE): repeatedly merge the adjacent pair with the lowest
    *merge-list priority*; a chunk is looked up whole first only if `ignore_merges` is set.
  They differ when a token can be spelled by a pair that is not its merge (ab+c vs a+bc), and
  HF ids need not follow merge order -- so a loaded tokenizer.json keeps the "pair" rule.
- The reference encoder is plain Python with a cache of encoded chunks (code repeats its
  chunks: the cache hit rate on the stdlib is > 95%).
- The fast path hands the same ranks, regex and specials to `tiktoken.Encoding` (built in
  memory; nothing is downloaded). It is used only where it is exact: the "rank" rule with a
  plain regex pre-tokenizer. Tests prove it gives the reference's ids on the whole corpus.
- Special tokens are matched in text only when the caller allows them (`allowed_special`);
  otherwise "<|user|>" is ordinary text. HF's non-special added tokens are always matched,
  as `tokenizers` does.
- Decoding joins token bytes and decodes UTF-8 with U+FFFD for invalid sequences: a model can
  emit half a character, and decoding must never crash on it. Unknown ids decode to U+FFFD too.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Callable, Iterable, Literal

import regex

from groundup.errors import UserError
from groundup.tokenizer.bytelevel import from_bytelevel
from groundup.tokenizer.export import save_tokenizer

# GPT-4 (cl100k) style split, in the form Llama 3 ships: no possessive quantifiers, so the
# same string means the same thing to Python's `regex`, tiktoken's fancy-regex and HF's
# Oniguruma. Contractions; letters with one leading non-letter; numbers of 1-3 digits;
# punctuation runs with trailing newlines; newlines; whitespace not followed by a word.
GPT4_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# GPT-2's split (HF ByteLevel pre-tokenizer with use_regex=true)
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

CACHE_SIZE = 1 << 17
REPLACEMENT = "\ufffd".encode("utf-8")


@dataclass(frozen=True)
class AddedToken:
    """A token matched in the text before pre-tokenization (HF "added_tokens")."""
    content: str
    id: int
    special: bool = True          # special: only matched when allowed; else always matched
    lstrip: bool = False          # swallow whitespace on the left into the match
    rstrip: bool = False          # ... and on the right
    single_word: bool = False     # only match when not inside a word
    normalized: bool = False      # matched in the normalized text rather than the raw text


class RegexSplit:
    """The whole pre-tokenizer of our own tokenizers: regex matches are the chunks."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        try:
            self.split: Callable[[str], list[str]] = regex.compile(pattern).findall
        except regex.error as e:
            raise UserError(f"the split pattern is not a valid regex: {e}") from None


def _matcher(tokens: list[tuple[str, int, AddedToken]]) -> tuple[regex.Pattern | None, list]:
    """One regex for a set of added tokens, and the token id of each capturing group."""
    alts, ids = [], [None]                               # group 0 is the whole match
    # longest first: an alternation is leftmost-first, HF's matcher is leftmost-longest
    for content, token_id, t in sorted(tokens, key=lambda x: -len(x[0])):
        p = regex.escape(content)
        if t.single_word:
            p = rf"(?<!\w){p}(?!\w)"
        alts.append((r"\s*" if t.lstrip else "") + f"({p})" + (r"\s*" if t.rstrip else ""))
        ids.append(token_id)
    return (regex.compile("|".join(alts)) if alts else None), ids


def _cut(text: str, matcher: regex.Pattern | None, ids: list):
    """Yield the text between matches as (text, None) and each match as (None, token id)."""
    start = 0
    if matcher is not None:
        for m in matcher.finditer(text):
            if m.start() > start:
                yield text[start:m.start()], None
            yield None, ids[m.lastindex]
            start = m.end()
    if start < len(text):
        yield text[start:], None


def bpe_merge(symbols: list, score) -> list:
    """Merge adjacent symbols until no pair scores: always the pair with the lowest score,
    leftmost among equals. `score(left, right)` is (priority, merged symbol) or None.

    A heap of candidate pairs over a linked list of symbols, as HF's `Word::merge_all`:
    O(n log n), where the textbook "rescan every pair" loop is O(n^2) -- which matters for a
    chunk of 5000 spaces (4.4 s rescanning, milliseconds with the heap). An entry is stale
    when its pair has changed since it was pushed; it is recognised on pop and skipped."""
    n = len(symbols)
    nxt = list(range(1, n)) + [-1]
    prv = list(range(-1, n - 1))
    heap = []
    for i in range(n - 1):
        s = score(symbols[i], symbols[i + 1])
        if s is not None:
            heap.append((s[0], i))
    heapq.heapify(heap)
    while heap:
        priority, i = heapq.heappop(heap)
        j = nxt[i]
        if symbols[i] is None or j < 0:
            continue
        s = score(symbols[i], symbols[j])
        if s is None or s[0] != priority:            # stale: this pair changed
            continue
        symbols[i], symbols[j] = s[1], None          # i absorbs j
        nxt[i] = nxt[j]
        if nxt[i] >= 0:
            prv[nxt[i]] = i
        for left in (prv[i], i):                     # the two pairs the merge created
            if left >= 0 and nxt[left] >= 0:
                s = score(symbols[left], symbols[nxt[left]])
                if s is not None:
                    heapq.heappush(heap, (s[0], left))
    return [x for x in symbols if x is not None]


class Tokenizer:
    """A byte-level BPE tokenizer: `vocab` (token bytes -> id), a pre-tokenizer, a merge rule,
    and added/special tokens. Build one with `train_tokenizer`, `load_tokenizer` or
    `Tokenizer.from_ranks`; the constructor is the common ground of those."""

    def __init__(self, vocab: dict[bytes, int], *, pretokenizer,
                 merge_rule: Literal["rank", "pair"], added: Iterable[AddedToken] = (),
                 merges: list[tuple[bytes, bytes]] | None = None,
                 ignore_merges: bool = True, bos: str | None = None, eos: str | None = None,
                 hf_json: dict | None = None, chat_template: str | None = None):
        self.vocab = vocab                               # token bytes -> id (ordinary tokens)
        self.pretokenizer = pretokenizer                 # .split(text) -> list[str]
        self.merge_rule = merge_rule
        self.merges = merges or []                       # "pair" rule: (left, right) by priority
        self.ignore_merges = ignore_merges
        self.added = sorted(added, key=lambda t: t.id)
        self.special_tokens = {t.content: t.id for t in self.added if t.special}
        self.hf_json = hf_json                           # the file this was loaded from, if any
        self.chat_template = chat_template
        self.pattern = getattr(pretokenizer, "pattern", None)

        self.vocab_size = 1 + max([*vocab.values(), *(t.id for t in self.added)])
        self._id_bytes: list[bytes | None] = [None] * self.vocab_size
        for b, i in vocab.items():
            self._id_bytes[i] = b
        for t in self.added:
            self._id_bytes[t.id] = t.content.encode("utf-8")
        self._added_by_content = {t.content: t for t in self.added}
        self.bos_id = self.token_to_id(bos) if bos else None
        self.eos_id = self.token_to_id(eos) if eos else None
        self._byte_ids = [vocab.get(bytes([i])) for i in range(256)]
        self._pair_rank = {}                             # (left id, right id) -> (priority, new id)
        if merge_rule == "pair":
            for p, (x, y) in enumerate(self.merges):
                ix, iy, iz = vocab.get(x), vocab.get(y), vocab.get(x + y)
                if ix is not None and iy is not None and iz is not None:
                    self._pair_rank.setdefault((ix, iy), (p, iz))
        self._cache: dict[str, list[int]] = {}
        self._matchers: dict[frozenset, tuple] = {}     # allowed specials -> (raw, normalized)
        self._tt = None
        self.fast = merge_rule == "rank" and isinstance(pretokenizer, RegexSplit)

    @classmethod
    def from_ranks(cls, ranks: dict[bytes, int], *, pattern: str, special_tokens: dict[str, int],
                   bos: str | None = "<|begin_of_text|>", eos: str | None = "<|end_of_text|>"
                   ) -> "Tokenizer":
        """A tiktoken-style tokenizer: ids are ranks; our own trained tokenizers are these."""
        added = [AddedToken(s, i) for s, i in special_tokens.items()]
        bos = bos if bos in special_tokens else None
        eos = eos if eos in special_tokens else None
        return cls(ranks, pretokenizer=RegexSplit(pattern), merge_rule="rank", added=added,
                   bos=bos, eos=eos)

    # ---------------------------------------------------------------- lookups

    def token_to_id(self, s: str) -> int | None:
        """The id of a special/added token, or of an ordinary token given as its text (or, for
        a loaded tokenizer.json, as written in its vocab: "Ġthe")."""
        t = self._added_by_content.get(s)
        if t is not None:
            return t.id
        i = self.vocab.get(s.encode("utf-8"))
        if i is None and self.hf_json is not None:
            b = from_bytelevel(s)
            i = self.vocab.get(b) if b is not None else None
        return i

    def id_to_bytes(self, i: int) -> bytes:
        b = self._id_bytes[i] if 0 <= i < self.vocab_size else None
        if b is None:
            raise UserError(f"token id {i} is not in this tokenizer's vocabulary "
                            f"(0..{self.vocab_size - 1})")
        return b

    @property
    def n_ordinary(self) -> int:
        return len(self.vocab)

    # ---------------------------------------------------------------- encoding

    def _allowed(self, allowed_special) -> frozenset:
        if allowed_special == "all":
            return frozenset(self.special_tokens)
        allowed = frozenset(allowed_special or ())
        unknown = allowed - self.special_tokens.keys()
        if unknown:
            raise UserError(f"not special tokens of this tokenizer: {sorted(unknown)}")
        return allowed

    def encode(self, text: str, allowed_special: Iterable[str] | str = frozenset()) -> list[int]:
        """Text -> ids. Special tokens in `text` become special ids only if allowed ("all" or a
        set of their strings); otherwise they are encoded as the ordinary text they are."""
        allowed = self._allowed(allowed_special)
        if self.fast:
            if not allowed:           # skips tiktoken's search for special tokens
                return self._tiktoken().encode_ordinary(text)
            return self._tiktoken().encode(text, allowed_special=allowed, disallowed_special=())
        return self.encode_reference(text, allowed)

    def encode_batch(self, texts: list[str], allowed_special: Iterable[str] | str = frozenset(),
                     num_threads: int = 8) -> list[list[int]]:
        allowed = self._allowed(allowed_special)
        if self.fast:
            if not allowed:
                return self._tiktoken().encode_ordinary_batch(texts, num_threads=num_threads)
            return self._tiktoken().encode_batch(texts, num_threads=num_threads,
                                                 allowed_special=allowed, disallowed_special=())
        return [self.encode_reference(t, allowed) for t in texts]

    def encode_reference(self, text: str, allowed_special: Iterable[str] | str = frozenset()
                         ) -> list[int]:
        """The plain-Python encoder (the definition the fast path must match)."""
        allowed = self._allowed(allowed_special)
        ids: list[int] = []
        for part, token_id in self._split_added(text, allowed):
            if token_id is not None:
                ids.append(token_id)
                continue
            for chunk in self.pretokenizer.split(part):
                cached = self._cache.get(chunk)
                if cached is None:
                    if len(self._cache) >= CACHE_SIZE:
                        self._cache.clear()
                    cached = self._cache[chunk] = self._bpe(chunk.encode("utf-8"))
                ids.extend(cached)
        return ids

    def _split_added(self, text: str, allowed: frozenset):
        """Yield (ordinary text, None) and (None, added token id), in order. As `tokenizers`
        does it: tokens marked normalized=False are found in the raw text; the text between
        them is normalized; tokens marked normalized=True are then found in that."""
        if allowed not in self._matchers:
            tokens = [t for t in self.added if not t.special or t.content in allowed]
            normalize = getattr(self.pretokenizer, "normalize", None)
            raw = [(t.content, t.id, t) for t in tokens if not (t.normalized and normalize)]
            norm = [(normalize(t.content), t.id, t) for t in tokens if t.normalized and normalize]
            self._matchers[allowed] = (_matcher(raw), _matcher(norm))
        (raw_re, raw_ids), (norm_re, norm_ids) = self._matchers[allowed]
        normalize = getattr(self.pretokenizer, "normalize", None)
        for part, token_id in _cut(text, raw_re, raw_ids):
            if token_id is not None:
                yield None, token_id
                continue
            if normalize is not None:
                part = normalize(part)
            yield from _cut(part, norm_re, norm_ids)

    def _bpe(self, piece: bytes) -> list[int]:
        vocab = self.vocab
        if self.merge_rule == "rank" or self.ignore_merges:
            whole = vocab.get(piece)                 # a chunk that is a token is one token
            if whole is not None:
                return [whole]
        if self.merge_rule == "rank":
            def score(x: bytes, y: bytes):           # rank of the merged bytes
                r = vocab.get(x + y)
                return None if r is None else (r, x + y)
            return [vocab[b] for b in bpe_merge([piece[i:i + 1] for i in range(len(piece))],
                                                score)]
        # "pair": HF's rule -- the merge list's priority of the pair itself
        ids = [self._byte_ids[byte] for byte in piece]
        if None in ids:
            byte = piece[ids.index(None)]
            raise UserError(f"byte 0x{byte:02x} has no token in this vocabulary")
        return bpe_merge(ids, lambda a, b: self._pair_rank.get((a, b)))

    def _tiktoken(self):
        if self._tt is None:
            import tiktoken
            self._tt = tiktoken.Encoding(name="groundup", pat_str=self.pattern,
                                         mergeable_ranks=self.vocab,
                                         special_tokens=dict(self.special_tokens))
        return self._tt

    # ---------------------------------------------------------------- decoding

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Ids -> the bytes they stand for. An id outside the vocabulary (a model whose
        embedding is padded past the tokenizer can sample one) becomes U+FFFD's bytes rather
        than an exception; `id_to_bytes` is the strict lookup."""
        table = self._id_bytes
        ids = list(ids)
        try:
            if not ids or min(ids) >= 0:      # a negative index would silently wrap around
                return b"".join([table[i] for i in ids])
        except (IndexError, TypeError):
            pass
        return b"".join([table[i] if 0 <= i < len(table) and table[i] is not None
                         else REPLACEMENT for i in ids])

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; bytes that are not valid UTF-8 (half a character) become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ---------------------------------------------------------------- files

    def save(self, directory) -> None:
        save_tokenizer(self, directory)

    def __repr__(self) -> str:
        return (f"Tokenizer(vocab_size={self.vocab_size}, rule={self.merge_rule!r}, "
                f"specials={len(self.special_tokens)}, fast={self.fast})")
