"""Writing a tokenizer: our own directory, and the Hugging Face `tokenizer.json` beside it.

    save_tokenizer(tok, directory)      what Tokenizer.save does
    to_hf_json(tok) -> dict             the tokenizer.json that makes `tokenizers` encode like tok

Our directory:
    tokenizer.tiktoken        the ranks, in tiktoken's own file format (base64 token, rank)
    groundup_tokenizer.json   the split pattern, special tokens, bos/eos
    tokenizer.json            the same tokenizer for HF `tokenizers` / `transformers`
    tokenizer_config.json     bos/eos for `transformers.AutoTokenizer` (merged into an existing one)
Other files in the directory (config.json, model.safetensors, ...) are left alone.

Design choices:
- Exporting our "rank" tokenizer: HF merges by pair priority, tiktoken by rank of the merged
  bytes. To make HF follow the rank rule we list, for every token in rank order, *every* way to
  spell it as two tokens (not just the pair that created it: bytelevel.all_splits_merges), and
  set `ignore_merges` (tiktoken looks a chunk up whole first). formats.py recognises a merge
  list of exactly that shape on import and turns it back into ranks.
- This module reads a tokenizer's attributes and knows nothing of the Tokenizer class, so the
  class can save itself without the two modules importing each other (reading, formats.py,
  does build Tokenizers).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from groundup.errors import UserError
from groundup.io import atomic_write_json, atomic_write_text
from groundup.tokenizer.bytelevel import all_splits_merges, to_bytelevel

OURS = "groundup_tokenizer.json"
RANKS = "tokenizer.tiktoken"


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}) -- is it a tokenizer.json?") from None


def to_hf_json(tok) -> dict:
    """The tokenizer.json that makes `tokenizers` encode exactly like `tok`."""
    if tok.merge_rule == "pair":
        if tok.hf_json is None:
            raise UserError("this tokenizer has no tokenizer.json to export")
        return tok.hf_json
    added = [{"id": t.id, "content": t.content, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True} for t in tok.added]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": tok.pattern}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                    "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": {to_bytelevel(b): i for b, i in sorted(tok.vocab.items(),
                                                                  key=lambda kv: kv[1])},
                  "merges": [[to_bytelevel(x), to_bytelevel(y)]
                             for x, y in all_splits_merges(tok.vocab)]},
    }


def save_tokenizer(tok, directory) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    bos = tok._id_bytes[tok.bos_id].decode("utf-8", "replace") if tok.bos_id is not None else None
    eos = tok._id_bytes[tok.eos_id].decode("utf-8", "replace") if tok.eos_id is not None else None
    if tok.merge_rule == "rank":
        lines = [f"{base64.b64encode(b).decode()} {i}"
                 for b, i in sorted(tok.vocab.items(), key=lambda kv: kv[1])]
        atomic_write_text(d / RANKS, "\n".join(lines) + "\n")
        atomic_write_json(d / OURS, {"format": "groundup-bpe", "version": 1, "ranks": RANKS,
                                     "pattern": tok.pattern, "special_tokens": tok.special_tokens,
                                     "bos": bos, "eos": eos})
    atomic_write_json(d / "tokenizer.json", to_hf_json(tok), indent=None)
    cfg_path = d / "tokenizer_config.json"
    cfg = read_json(cfg_path) if cfg_path.is_file() else {}
    cfg.setdefault("tokenizer_class", "PreTrainedTokenizerFast")
    cfg.update({k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None})
    if tok.chat_template and "chat_template" not in cfg:
        cfg["chat_template"] = tok.chat_template
    atomic_write_json(cfg_path, cfg)
