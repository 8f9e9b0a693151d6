"""`groundup tokenizer train | encode | decode | stats` -- CLI glue over groundup.tokenizer."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from groundup.argtypes import existing_path, int_range, output_dir
from groundup.errors import UserError

EPILOG = """examples:
  groundup tokenizer train --vocab-size 8192 --out runs/tok      # on the embedded stdlib corpus
  groundup tokenizer encode --tokenizer runs/tok --text 'def f(x):' --json
  echo 'print(1)' | groundup tokenizer encode --tokenizer runs/tok --json \\
      | groundup tokenizer decode --tokenizer runs/tok
  groundup tokenizer stats --tokenizer path/to/hf-model-dir

A tokenizer PATH is one of our tokenizer directories, a Hugging Face tokenizer.json, or a
directory holding one (e.g. a model directory)."""


TOKENIZER_HELP = "our tokenizer directory, a tokenizer.json, or a directory holding one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = sub.add_parser("train", help="train a byte-level BPE tokenizer on a corpus",
                       description="Train a byte-level BPE tokenizer. The vocabulary size counts "
                       "the 256 byte tokens, the learned merges and the 32 special tokens.")
    p.add_argument("--input", nargs="+", metavar="PATH", type=existing_path,
                   help="files or directories (.py/.pyi/.txt/.md/.rst under directories); "
                   "default: the embedded corpus, this Python's standard library without tests")
    p.add_argument("--vocab-size", type=int_range(288), default=8192, help="total vocabulary size "
                   "(default 8192; at least 288)")
    p.add_argument("--out", required=True, type=output_dir, help="directory to write the tokenizer to "
                   "(other files in it are kept)")
    p.add_argument("--pattern", help="pre-tokenization regex (default: the GPT-4 style split)")

    p = sub.add_parser("encode", help="text -> token ids",
                       description="Encode text (from --text, else stdin) into token ids.")
    p.add_argument("--tokenizer", required=True, metavar="PATH", type=existing_path, help=TOKENIZER_HELP)
    p.add_argument("--text", help="the text to encode (default: read stdin)")
    p.add_argument("--json", action="store_true", help='print {"ids": [...]} instead of "1,2,3"')
    p.add_argument("--allow-special", action="store_true",
                   help="turn special-token strings such as <|user|> into their special ids "
                   "(default: they are encoded as ordinary text)")

    p = sub.add_parser("decode", help="token ids -> text",
                       description="Decode token ids into text. Invalid UTF-8 (a split "
                       "character) is shown as U+FFFD.")
    p.add_argument("--tokenizer", required=True, metavar="PATH", type=existing_path, help=TOKENIZER_HELP)
    p.add_argument("--ids", help='ids as "1,2,3" (or JSON); default: read stdin, which may be the '
                   "output of `encode --json`")

    p = sub.add_parser("stats", help="vocabulary size and bytes per token on a corpus",
                       description="Show a tokenizer's vocabulary and its compression "
                       "(UTF-8 bytes per token) on a corpus.")
    p.add_argument("--tokenizer", required=True, metavar="PATH", type=existing_path, help=TOKENIZER_HELP)
    p.add_argument("--input", nargs="+", metavar="PATH", type=existing_path,
                   help="files or directories to measure on (default: the embedded corpus)")


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "encode": _encode, "decode": _decode, "stats": _stats}[args.verb](args)


def _train(args) -> int:
    from groundup.tokenizer import default_corpus_files, train_tokenizer
    inputs = [Path(p) for p in args.input] if args.input else default_corpus_files()
    t0 = time.perf_counter()
    tok = train_tokenizer(inputs, vocab_size=args.vocab_size, pattern=args.pattern, progress=True)
    seconds = time.perf_counter() - t0
    tok.save(args.out)
    print(f"trained a vocabulary of {tok.vocab_size} ({tok.n_ordinary} ordinary + "
          f"{len(tok.special_tokens)} special) in {seconds:.1f}s -> {args.out}")
    return 0


def _encode(args) -> int:
    from groundup.tokenizer import load_tokenizer
    tok = load_tokenizer(args.tokenizer)
    text = args.text if args.text is not None else sys.stdin.read()
    ids = tok.encode(text, allowed_special="all" if args.allow_special else frozenset())
    print(json.dumps({"ids": ids}) if args.json else ",".join(map(str, ids)))
    return 0


def parse_ids(s: str) -> list[int]:
    s = s.strip()
    if s.startswith(("{", "[")):
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:
            raise UserError(f"ids are not valid JSON ({e}) -- give 1,2,3 or {{\"ids\": [...]}}") \
                from None
        obj = obj.get("ids") if isinstance(obj, dict) else obj
        if not isinstance(obj, list) or not all(isinstance(i, int) for i in obj):
            raise UserError('ids must be a list of integers, e.g. 1,2,3 or {"ids": [1, 2, 3]}')
        return obj
    parts = [p for p in re.split(r"[,\s]+", s) if p]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise UserError(f"ids must be integers separated by commas, got {s[:40]!r}") from None


def _decode(args) -> int:
    from groundup.tokenizer import load_tokenizer
    tok = load_tokenizer(args.tokenizer)
    ids = parse_ids(args.ids if args.ids is not None else sys.stdin.read())
    for i in ids:
        tok.id_to_bytes(i)                  # an unknown id is the user's mistake: say which
    sys.stdout.write(tok.decode(ids))
    if sys.stdout.isatty():
        sys.stdout.write("\n")
    return 0


def _stats(args) -> int:
    from groundup.tokenizer import default_corpus_files, load_tokenizer
    from groundup.tokenizer.corpus import iter_texts
    tok = load_tokenizer(args.tokenizer)
    inputs = [Path(p) for p in args.input] if args.input else default_corpus_files()
    texts = list(iter_texts(inputs))
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    if n_bytes == 0:
        raise UserError("the corpus to measure on is empty")
    t0 = time.perf_counter()
    n_tokens = sum(map(len, tok.encode_batch(texts)))
    seconds = time.perf_counter() - t0
    longest = sorted(tok.vocab, key=len)[-5:]
    encoder = "tiktoken fast path" if tok.fast else "reference encoder"
    print(f"tokenizer        {args.tokenizer}  ({encoder}, {tok.merge_rule} rule)")
    print(f"vocabulary       {tok.vocab_size} ({tok.n_ordinary} ordinary, "
          f"{len(tok.added)} added of which {len(tok.special_tokens)} special)")
    print(f"bos / eos ids    {tok.bos_id} / {tok.eos_id}")
    print(f"corpus           {len(texts)} texts, {n_bytes:,} bytes")
    print(f"tokens           {n_tokens:,}")
    print(f"bytes per token  {n_bytes / max(n_tokens, 1):.3f}")
    print(f"encode speed     {n_bytes / seconds / 1e6:.1f} MB/s")
    print("longest tokens   " + "  ".join(repr(b.decode("utf-8", "replace")) for b in longest))
    return 0
