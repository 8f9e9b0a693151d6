"""Reading tokenizer files: our own directory, or a Hugging Face `tokenizer.json`.

    load_tokenizer(path) -> Tokenizer      our directory, a tokenizer.json, or a model directory
    from_hf_json(obj) -> Tokenizer         a parsed tokenizer.json

Writing is export.py's (Tokenizer.save); GPT-2's byte alphabet is bytelevel.py's.

Design choices for tokenizer.json:
- Supported: model type BPE of the byte-level kind (GPT-2, Llama 3, Qwen2): pre-tokenizers
  ByteLevel, Digits and Split (Regex or String; Isolated/Removed/MergedWith*) in any Sequence,
  normalizers NFC/NFD/NFKC/NFKD, added tokens (special or not, lstrip/rstrip/single_word,
  normalized or raw).
  Anything else is refused with one line that names what is unsupported.
- Imported files keep HF's merge rule ("pair", see tokenizer.py), so ids equal `tokenizers`'
  even where tiktoken's rule would differ. The post-processor (e.g. Llama 3's automatic BOS) is
  not applied: `encode` never adds tokens the text does not contain; add `bos_id` yourself.
- A merge list of the shape export.py writes for our "rank" tokenizers (every two-token spelling
  of every token, in rank order) is recognised and turned back into ranks, so the fast path
  applies to it too.
"""

from __future__ import annotations

import base64
import unicodedata
from pathlib import Path

import regex

from groundup.errors import UserError
from groundup.tokenizer.bytelevel import (all_splits_merges, bytes_to_unicode,  # noqa: F401 (re-exported)
                                          from_bytelevel, to_bytelevel, unicode_to_bytes)
from groundup.tokenizer.export import OURS, RANKS, read_json, save_tokenizer, to_hf_json  # noqa: F401
from groundup.tokenizer.tokenizer import GPT2_PATTERN, AddedToken, RegexSplit, Tokenizer


# ------------------------------------------------------------------ HF pre-tokenization

class HFPreTokenizer:
    """Normalizers, and a sequence of Split/ByteLevel steps, as `tokenizers` runs them. The
    Tokenizer normalizes the text between added tokens, then splits it."""

    def __init__(self, normalizers: list[str], steps: list[tuple]):
        self.normalizers = normalizers
        self.steps = steps

    def normalize(self, text: str) -> str:
        for form in self.normalizers:
            text = unicodedata.normalize(form, text)
        return text

    def split(self, text: str) -> list[str]:
        """Pre-tokenize text that `normalize` has already been applied to."""
        pieces = [text]
        for step in self.steps:
            out: list[str] = []
            for p in pieces:
                out.extend(step_split(step, p))
            pieces = out
        return [p for p in pieces if p]


def step_split(step: tuple, text: str) -> list[str]:
    kind = step[0]
    if kind == "bytelevel":
        _, add_prefix_space, compiled = step
        if add_prefix_space and not text.startswith(" "):
            text = " " + text
        return compiled.findall(text) if compiled is not None else [text]
    _, compiled, behavior = step                     # "split"
    out: list[str] = []
    start = 0
    pending = ""                                     # for MergedWithNext
    for m in compiled.finditer(text):
        gap, hit = text[start:m.start()], m.group()
        start = m.end()
        if not hit:
            continue
        if behavior == "Isolated":
            out += [gap, hit]
        elif behavior == "Removed":
            out.append(gap)
        elif behavior == "MergedWithPrevious":
            out.append(gap + hit)
        else:                                        # MergedWithNext
            out.append(pending + gap)
            pending = hit
    out.append(pending + text[start:])
    return [p for p in out if p]


def _parse_normalizer(n: dict | None) -> list[str]:
    if n is None:
        return []
    if n.get("type") == "Sequence":
        return [f for sub in n.get("normalizers", []) for f in _parse_normalizer(sub)]
    if n.get("type") in ("NFC", "NFD", "NFKC", "NFKD"):
        return [n["type"]]
    raise UserError(f"unsupported tokenizer.json normalizer {n.get('type')!r} "
                    "(supported: NFC, NFD, NFKC, NFKD, Sequence)")


def _parse_pretokenizer(p: dict | None) -> list[tuple]:
    if p is None:
        return []
    kind = p.get("type")
    if kind == "Sequence":
        return [s for sub in p.get("pretokenizers", []) for s in _parse_pretokenizer(sub)]
    if kind == "ByteLevel":
        compiled = regex.compile(GPT2_PATTERN) if p.get("use_regex", True) else None
        return [("bytelevel", bool(p.get("add_prefix_space", True)), compiled)]
    if kind == "Digits":         # HF splits on char::is_numeric, i.e. Unicode \p{N}
        single = p.get("individual_digits", False)
        return [("split", regex.compile(r"\p{N}" if single else r"\p{N}+"), "Isolated")]
    if kind == "Split":
        pat = p.get("pattern", {})
        source = pat["Regex"] if "Regex" in pat else regex.escape(pat.get("String", ""))
        behavior = p.get("behavior", "Isolated")
        if behavior not in ("Isolated", "Removed", "MergedWithPrevious", "MergedWithNext"):
            raise UserError(f"unsupported Split behavior {behavior!r} in tokenizer.json")
        if p.get("invert"):
            raise UserError("unsupported Split pre-tokenizer with invert=true in tokenizer.json")
        try:
            return [("split", regex.compile(source), behavior)]
        except regex.error as e:
            raise UserError(f"tokenizer.json split pattern is not a regex we can compile: {e}") \
                from None
    raise UserError(f"unsupported tokenizer.json pre-tokenizer {kind!r} "
                    "(supported: ByteLevel, Split, Digits, Sequence)")


# ------------------------------------------------------------------ import

def from_hf_json(obj: dict, source: str = "tokenizer.json", bos: str | None = None,
                 eos: str | None = None, chat_template: str | None = None) -> Tokenizer:
    model = obj.get("model") if isinstance(obj, dict) else None
    if not isinstance(model, dict):
        raise UserError(f"{source} has no \"model\" section -- is it a tokenizers tokenizer.json?")
    mtype = model.get("type", "BPE" if "merges" in model else None)
    if mtype != "BPE":
        raise UserError(f"unsupported tokenizer model type {mtype!r} in {source}: only "
                        "byte-level BPE (GPT-2, Llama 3, Qwen2 style) is supported")
    if model.get("dropout") not in (None, 0, 0.0):
        raise UserError(f"unsupported BPE dropout in {source} (encoding would be random)")
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise UserError(f"unsupported BPE with subword prefix/suffix in {source} "
                        "(not byte-level)")
    normalizers = _parse_normalizer(obj.get("normalizer"))
    steps = _parse_pretokenizer(obj.get("pre_tokenizer"))
    if not any(s[0] == "bytelevel" for s in steps):
        raise UserError(f"unsupported tokenizer in {source}: no ByteLevel pre-tokenizer, so it "
                        "is not byte-level BPE (e.g. SentencePiece-style Llama 2)")

    added_list = obj.get("added_tokens") or []
    added_contents = {t["content"] for t in added_list}
    vocab: dict[bytes, int] = {}
    for s, i in model.get("vocab", {}).items():
        b = from_bytelevel(s)
        if b is not None and s not in added_contents:
            vocab.setdefault(b, i)
    merges = []
    for m in model.get("merges", []):
        x, y = m.split(" ", 1) if isinstance(m, str) else m
        bx, by = from_bytelevel(x), from_bytelevel(y)
        if bx is None or by is None:
            raise UserError(f"merge {x!r} {y!r} in {source} is not byte-level")
        merges.append((bx, by))
    added = [AddedToken(t["content"], int(t["id"]), special=bool(t.get("special", False)),
                        lstrip=bool(t.get("lstrip")), rstrip=bool(t.get("rstrip")),
                        single_word=bool(t.get("single_word")),
                        normalized=bool(t.get("normalized"))) for t in added_list]
    ignore_merges = bool(model.get("ignore_merges", False))

    # our own export? then it is a rank tokenizer, and the tiktoken fast path is exact
    only_split = (len(steps) == 2 and steps[0][0] == "split" and steps[0][2] == "Isolated"
                  and steps[1] == ("bytelevel", False, None))
    plain_specials = all(t.special and not (t.lstrip or t.rstrip or t.single_word)
                         for t in added)
    if (only_split and not normalizers and ignore_merges and plain_specials
            and len(vocab) >= 256 and sorted(vocab.values()) == list(range(len(vocab)))
            and all(bytes([i]) in vocab for i in range(256))
            and merges == all_splits_merges(vocab)):
        specials = {t.content: t.id for t in added}
        tok = Tokenizer.from_ranks(vocab, pattern=steps[0][1].pattern, special_tokens=specials,
                                   bos=bos, eos=eos)
        tok.chat_template = chat_template
        return tok
    return Tokenizer(vocab, pretokenizer=HFPreTokenizer(normalizers, steps), merge_rule="pair",
                     added=added, merges=merges, ignore_merges=ignore_merges, bos=bos, eos=eos,
                     hf_json=obj, chat_template=chat_template)



def _token_name(v) -> str | None:
    if isinstance(v, dict):
        return v.get("content")
    return v if isinstance(v, str) else None


def _hf_config(directory: Path) -> tuple[str | None, str | None, str | None]:
    """bos, eos and chat template named by tokenizer_config.json (or special_tokens_map.json)."""
    bos = eos = template = None
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        f = directory / name
        if f.is_file():
            cfg = read_json(f)
            bos = _token_name(cfg.get("bos_token")) or bos
            eos = _token_name(cfg.get("eos_token")) or eos
            t = cfg.get("chat_template")
            if isinstance(t, list):       # named templates: take "default", else the first
                t = next((x["template"] for x in t if x.get("name") == "default"),
                         t[0]["template"] if t else None)
            template = t or template
    if template is None and (directory / "chat_template.jinja").is_file():
        template = (directory / "chat_template.jinja").read_text(encoding="utf-8")
    return bos, eos, template


def load_tokenizer(path) -> Tokenizer:
    """Our tokenizer directory, a tokenizer.json file, or a directory holding one (an HF
    model directory included: its tokenizer_config.json names bos/eos)."""
    p = Path(path)
    if p.is_dir():
        if (p / OURS).is_file():
            return _load_ours(p)
        if (p / "tokenizer.json").is_file():
            return load_tokenizer(p / "tokenizer.json")
        raise UserError(f"{p} holds no tokenizer.json -- give a tokenizer directory, a "
                        "tokenizer.json, or a model directory that has one")
    if not p.is_file():
        raise UserError(f"tokenizer {p} does not exist")
    bos, eos, template = _hf_config(p.parent)
    tok = from_hf_json(read_json(p), str(p), bos, eos, template)
    if bos is None and eos is None and "<|begin_of_text|>" in tok.special_tokens:
        tok.bos_id = tok.special_tokens["<|begin_of_text|>"]      # a bare export of ours
        tok.eos_id = tok.special_tokens.get("<|end_of_text|>")
    return tok


def _load_ours(directory: Path) -> Tokenizer:
    meta = read_json(directory / OURS)
    if not isinstance(meta, dict) or not {"pattern", "special_tokens"} <= meta.keys():
        raise UserError(f"{directory / OURS} is incomplete (needs pattern and special_tokens)")
    ranks: dict[bytes, int] = {}
    try:
        for line in (directory / meta.get("ranks", RANKS)).read_text().splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    except OSError as e:
        raise UserError(f"cannot read the ranks of {directory}: {e.strerror}") from None
    except ValueError:
        raise UserError(f"{directory / RANKS} is corrupt (expected 'base64 rank' lines)") from None
    # a byte-level BPE holds every single byte and ranks 0..n-1 without a gap; a file cut at a
    # line boundary parses, so check it here rather than let tiktoken panic on a missing rank
    if sorted(ranks.values()) != list(range(len(ranks))) or any(bytes([b]) not in ranks for b in range(256)):
        raise UserError(f"{directory / meta.get('ranks', RANKS)} is incomplete or corrupt ({len(ranks)} "
                        "ranks, not one per id from 0 with every byte): restore or retrain the tokenizer")
    _, _, template = _hf_config(directory)
    tok = Tokenizer.from_ranks(ranks, pattern=meta["pattern"],
                               special_tokens=meta["special_tokens"],
                               bos=meta.get("bos"), eos=meta.get("eos"))
    tok.chat_template = template
    return tok
