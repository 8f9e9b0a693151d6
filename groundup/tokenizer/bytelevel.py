"""GPT-2's byte-level alphabet: how tokenizer.json writes tokens that are bytes, not text.

Our tokens are bytes (tokenizer.py). HF's `tokenizers` stores a byte-level BPE vocabulary as
*strings*, one printable character per byte (space -> 'Ġ', newline -> 'Ċ'), so that the
vocabulary is valid JSON text. This alphabet exists only at that boundary: reading
tokenizer.json (formats.py), writing it (export.py), and looking up a token by its written
name ("Ġthe", Tokenizer.token_to_id).
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte to a printable character (space -> 'Ġ', newline -> 'Ċ')."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def to_bytelevel(b: bytes) -> str:
    m = bytes_to_unicode()
    return "".join(m[x] for x in b)


def from_bytelevel(s: str) -> bytes | None:
    m = unicode_to_bytes()
    try:
        return bytes(m[c] for c in s)
    except KeyError:
        return None        # not a byte-level string (e.g. an added token stored in the vocab)


def all_splits_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Every two-token spelling of every token, in rank order (see the module docstring)."""
    merges = []
    for token, _ in sorted(ranks.items(), key=lambda kv: kv[1]):
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((left, right))
    return merges
