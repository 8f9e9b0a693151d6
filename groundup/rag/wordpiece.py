"""WordPiece: the tokenizer of BERT and of the sentence encoders built on it.

    text ──normalize──> "def parse_url(s): ..."   clean, split CJK, strip accents, lowercase
         ──pre-split──> ["def", "parse", "_", "url", "(", "s", ")", ":", ...]   spaces, punctuation
         ──WordPiece──> ["def", "parse", "_", "ur", "##l", ...]   longest vocabulary match first
         ──template───> [CLS] ... [SEP]  ->  ids

Unlike byte-level BPE (groundup/tokenizer/), WordPiece has no merges: the vocabulary alone
decides. A word is cut greedily -- the longest prefix that is in the vocabulary, then the
longest `##`-prefixed continuation, and so on; if some position has no match the whole word
becomes `[UNK]`. That is why an uncased BERT vocabulary maps most code to known pieces and
never fails, but some emoji and rare scripts become `[UNK]`.

Design choices:
- Identical ids to Hugging Face `tokenizers` on a BERT `tokenizer.json` (a test checks on the
  shipped all-MiniLM-L6-v2 file): the normalizer's steps and their order follow the Rust
  `BertNormalizer` (drop control characters, whitespace to spaces, spaces around CJK
  ideographs, NFD + drop non-spacing marks, lowercase), whitespace is Rust's `White_Space`
  set (not Python's `str.isspace`), punctuation is ASCII punctuation plus Unicode `P*`.
- Special tokens written in the text (`[SEP]`, `[MASK]`) are matched before normalization,
  as `tokenizers` does for added tokens.
- A word -> pieces cache: code repeats its words endlessly, so the greedy loop runs once per
  distinct word; this is what makes a pure-Python tokenizer fast enough to feed the encoder.
- Truncation keeps the first `max_length - 2` pieces, then [SEP] (sentence-transformers'
  `truncation=True` on a single text).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

from groundup.errors import UserError

# Rust's char::is_whitespace (the Unicode White_Space property); Python's isspace() differs
WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
                       "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


# the ASCII fast path: controls dropped, \t\n\r to spaces; then words and single punctuation
_ASCII_CLEAN = {c: None for c in (*range(0, 9), 11, 12, *range(14, 32), 127)} | {9: 32, 10: 32, 13: 32}
_ASCII_WORDS = re.compile(r"[^ !-/:-@\[-`{-~]+|[!-/:-@\[-`{-~]")


def _is_control(ch: str) -> bool:
    # Cc, Cf, Co, Cs: the Rust crate's "other" has no unassigned (Cn) code points
    return ch not in "\t\n\r" and unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


class WordPiece:
    def __init__(self, vocab: dict[str, int], *, lowercase: bool = True,
                 strip_accents: bool | None = None, clean_text: bool = True,
                 handle_chinese_chars: bool = True, unk: str = "[UNK]", prefix: str = "##",
                 max_word_chars: int = 100, specials: tuple[str, ...] = (),
                 cls: str = "[CLS]", sep: str = "[SEP]", pad: str = "[PAD]"):
        self.vocab = vocab
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.clean_text, self.handle_chinese_chars = clean_text, handle_chinese_chars
        self.prefix, self.max_word_chars = prefix, max_word_chars
        for tok in (unk, cls, sep, pad):
            if tok not in vocab:
                raise UserError(f"the WordPiece vocabulary has no {tok!r} token -- is this a "
                                "BERT-family tokenizer?")
        self.unk_id, self.cls_id, self.sep_id, self.pad_id = (
            vocab[unk], vocab[cls], vocab[sep], vocab[pad])
        # longest first, so "[MASK]" is not cut by a shorter special that prefixes it
        self.specials = sorted((s for s in specials if s in vocab), key=len, reverse=True)
        self._special_re = (re.compile("(" + "|".join(map(re.escape, self.specials)) + ")")
                            if self.specials else None)
        self._special_any = any(not s.startswith("[") for s in self.specials)
        self._cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_dir(cls, path: str | Path) -> "WordPiece":
        """Load from a model directory: tokenizer.json if present, else vocab.txt (+ config)."""
        path = Path(path)
        if (path / "tokenizer.json").is_file():
            return cls.from_tokenizer_json(path / "tokenizer.json")
        if (path / "vocab.txt").is_file():
            lines = (path / "vocab.txt").read_text(encoding="utf-8").split("\n")
            vocab = {tok: i for i, tok in enumerate(lines) if tok or i < len(lines) - 1}
            cfg = {}
            if (path / "tokenizer_config.json").is_file():
                cfg = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
            return cls(vocab, lowercase=cfg.get("do_lower_case", True),
                       strip_accents=cfg.get("strip_accents"),
                       handle_chinese_chars=cfg.get("tokenize_chinese_chars", True),
                       specials=("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"))
        raise UserError(f"{path} has neither tokenizer.json nor vocab.txt -- give the "
                        "directory of a BERT-family sentence-transformers model")

    @classmethod
    def from_tokenizer_json(cls, file: str | Path) -> "WordPiece":
        spec = json.loads(Path(file).read_text(encoding="utf-8"))
        model, norm = spec.get("model") or {}, spec.get("normalizer") or {}
        if model.get("type") != "WordPiece" or norm.get("type") != "BertNormalizer":
            raise UserError(f"{file} is not a BERT WordPiece tokenizer (model "
                            f"{model.get('type')!r}, normalizer {norm.get('type')!r})")
        return cls(model["vocab"], lowercase=norm.get("lowercase", True),
                   strip_accents=norm.get("strip_accents"),
                   clean_text=norm.get("clean_text", True),
                   handle_chinese_chars=norm.get("handle_chinese_chars", True),
                   unk=model.get("unk_token", "[UNK]"),
                   prefix=model.get("continuing_subword_prefix", "##"),
                   max_word_chars=model.get("max_input_chars_per_word", 100),
                   specials=tuple(t["content"] for t in spec.get("added_tokens", [])
                                  if t.get("special")))

    # ------------------------------------------------------------------ the pipeline

    def normalize(self, text: str) -> str:
        if self.clean_text:
            text = "".join(" " if ch in WHITESPACE else ch for ch in text
                           if not (ch == "\x00" or ch == "\ufffd" or _is_control(ch)))
        if self.handle_chinese_chars:
            text = "".join(f" {ch} " if _is_cjk(ord(ch)) else ch for ch in text)
        if self.strip_accents:
            text = "".join(ch for ch in unicodedata.normalize("NFD", text)
                           if unicodedata.category(ch) != "Mn")
        if self.lowercase:                 # per character, as Rust's char::to_lowercase: no
            text = "".join(ch.lower() for ch in text)   # final-sigma rule (Python's str.lower has one)
        return text

    @staticmethod
    def pre_split(text: str) -> list[str]:
        """Split on whitespace (dropped) and punctuation (each mark its own word)."""
        words, cur = [], []
        for ch in text:
            if ch in WHITESPACE:
                if cur:
                    words.append("".join(cur))
                    cur = []
            elif _is_punct(ch):
                if cur:
                    words.append("".join(cur))
                    cur = []
                words.append(ch)
            else:
                cur.append(ch)
        if cur:
            words.append("".join(cur))
        return words

    def word_ids(self, word: str) -> list[int]:
        """Greedy longest-match-first WordPiece of one pre-split word (cached)."""
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        ids: list[int] = []
        if len(word) > self.max_word_chars:
            ids = [self.unk_id]
        else:
            start = 0
            while start < len(word):
                end, found = len(word), None
                while start < end:
                    piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                    found = self.vocab.get(piece)
                    if found is not None:
                        break
                    end -= 1
                if found is None:          # no piece fits here: the whole word is unknown
                    ids = [self.unk_id]
                    break
                ids.append(found)
                start = end
        if len(self._cache) < 1_000_000:   # bound the memory a huge corpus could take
            self._cache[word] = ids
        return ids

    def _segments(self, text: str) -> list[tuple[str, bool]]:
        """Cut out special tokens written literally in the text: [(piece, is_special)]."""
        if self._special_re is None or "[" not in text and not self._special_any:
            return [(text, False)]
        parts = self._special_re.split(text)   # the capture group keeps the specials
        return [(p, i % 2 == 1) for i, p in enumerate(parts) if p]

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """[CLS] pieces [SEP] as ids, truncated to `max_length` ids in all."""
        ids = [self.cls_id]
        for segment, special in self._segments(text):
            if special:
                ids.append(self.vocab[segment])
                continue
            if self.clean_text and segment.isascii():    # most code: same ids, ~10x faster
                words = _ASCII_WORDS.findall(segment.translate(_ASCII_CLEAN).lower()
                                             if self.lowercase else segment.translate(_ASCII_CLEAN))
            else:
                words = self.pre_split(self.normalize(segment))
            for word in words:
                ids.extend(self.word_ids(word))
        if max_length is not None and len(ids) > max_length - 1:
            ids = ids[:max_length - 1]
        ids.append(self.sep_id)
        return ids

    def tokens(self, text: str) -> list[str]:
        """The pieces as strings (for teaching and debugging)."""
        inverse = {i: t for t, i in self.vocab.items()}
        return [inverse[i] for i in self.encode(text)]
