"""Argument checks for every command: a bad number or path is refused before any work is done.

argparse calls a `type=` function on each value as it parses, before the command runs, so a
check written here happens before any file is written or any model is loaded -- and once for
every command instead of once per call site:

    p.add_argument("--steps", type=positive_int)               # 1, 2, ...       ("-3", "0" refused)
    p.add_argument("--lr", type=positive_float)                # > 0, finite     ("nan", "inf" refused)
    p.add_argument("--top-p", type=float_range(0, 1, low_open=True))
    p.add_argument("--data", type=existing_path)               # a file or directory that exists
    p.add_argument("--init", type=model_dir)                   # a directory holding config.json
    p.add_argument("--out", type=output_dir)                   # a directory, or nothing yet: not a file
    p.add_argument("--out", type=output_file)                  # a file, or nothing yet: not a directory

A refused value becomes one line, through `Parser` (the ArgumentParser every command gets):

    groundup: error: argument --steps: must be at least 1, got -3 (see `groundup train base --help`)

Design choices:
- Messages say what is wrong *and* what is accepted; argparse adds the option's name.
- Paths are checked for what the command will do with them (read a file, write into a
  directory), not only for existence: an --out that is a file, a --model that is a file, an
  output whose parent is a file are each refused with the reason.
- Values stay what argparse would give (int, float, str paths): commands need no change
  beyond the `type=`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path
from typing import Callable, NoReturn


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`groundup: error: ...`, exit 2) instead of
    the usage block and a second line; subcommand parsers made by add_subparsers inherit it."""

    def error(self, message: str) -> NoReturn:
        print(f"groundup: error: {message} (see `{self.prog} --help`)", file=sys.stderr, flush=True)
        sys.exit(2)


def _number(text: str, kind: type, name: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_range(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An integer in [low, high] (either bound may be None)."""
    def check(text: str) -> int:
        value = _number(text, int, "an integer")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value
    check.__name__ = "integer"      # argparse names the type in some messages
    return check


def float_range(low: float | None = None, high: float | None = None, *, low_open: bool = False,
                high_open: bool = False) -> Callable[[str], float]:
    """A finite float between low and high; `low_open` excludes low itself (e.g. > 0)."""
    def check(text: str) -> float:
        value = _number(text, float, "a number")
        if low is not None and (value < low or low_open and value == low):
            raise argparse.ArgumentTypeError(f"must be {'above' if low_open else 'at least'} "
                                             f"{low:g}, got {text}")
        if high is not None and (value > high or high_open and value == high):
            raise argparse.ArgumentTypeError(f"must be {'below' if high_open else 'at most'} "
                                             f"{high:g}, got {text}")
        return value
    check.__name__ = "number"
    return check


positive_int = int_range(1)
nonneg_int = int_range(0)
positive_float = float_range(0, low_open=True)
nonneg_float = float_range(0)
fraction = float_range(0, 1)                        # a share, 0 and 1 included
open_fraction = float_range(0, 1, low_open=True, high_open=True)
probability = float_range(0, 1, low_open=True)      # top-p: 0 would keep nothing


def device(text: str) -> str:
    """A torch device name: auto, cpu, cuda, cuda:N or mps (whether it exists is checked later,
    where torch is imported)."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: use auto, cpu, cuda, cuda:N or mps")
    return text


def _path(text: str) -> Path:
    if not text or "\x00" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable path")
    return Path(text).expanduser()


def existing_file(text: str) -> str:
    p = _path(text)
    if p.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, not a file")
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"{text} does not exist" if not p.exists()
                                         else f"{text} is not a regular file")
    if not os.access(p, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} is not readable (permission denied)")
    return text


def existing_dir(text: str) -> str:
    p = _path(text)
    if p.is_file():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a directory")
    if not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return text


def existing_path(text: str) -> str:
    """A file or a directory that exists (training data, corpora)."""
    p = _path(text)
    if not p.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist" if not p.is_symlink()
                                         else f"{text} is a broken symlink")
    if not os.access(p, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} is not readable (permission denied)")
    return text


def model_dir(text: str) -> str:
    """A model directory: config.json (a JSON object) beside whole weights -- checked in pure
    Python (headers and lengths, groundup.io.safetensors_header), so a truncated or garbled
    model is refused before torch is even imported."""
    import json

    from groundup.errors import UserError
    from groundup.io import safetensors_header
    p = _path(text)
    if p.is_file():
        raise argparse.ArgumentTypeError(
            f"{text} is a file, not a model directory: give the directory that holds config.json "
            "and model.safetensors")
    if not p.is_dir():
        raise argparse.ArgumentTypeError(f"model directory {text} does not exist")
    if not (p / "config.json").is_file():
        raise argparse.ArgumentTypeError(
            f"{text} is not a model directory (no config.json): give the directory that training "
            "or `groundup export` wrote")
    try:
        if not isinstance(json.loads((p / "config.json").read_bytes().decode("utf-8")), dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{p / 'config.json'} is not valid JSON ({e})") from None
    index = p / "model.safetensors.index.json"
    shards = sorted(p.glob("model-*.safetensors")) if index.is_file() else [p / "model.safetensors"]
    try:
        for f in shards:
            if f.is_file():       # a missing file is for the loader to name (it knows the layout)
                safetensors_header(f)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _writable_parent(p: Path, text: str) -> None:
    """The nearest existing ancestor of `p` must be a directory we can create things in."""
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create {text}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot create {text}: {parent} is not writable")


def output_dir(text: str) -> str:
    """A directory to write into: one that exists, or one that can be created. Not a file."""
    p = _path(text)
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is a file, not a directory: give a "
                                         "new or existing directory")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"{text} is not writable")
    else:
        _writable_parent(p, text)
    return text


def output_file(text: str) -> str:
    """A file to write: one that exists (it will be replaced or appended to), or a new one."""
    p = _path(text)
    if p.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory: give a file path")
    if p.exists():
        if not os.access(p, os.W_OK):
            raise argparse.ArgumentTypeError(f"{text} is not writable")
    else:
        _writable_parent(p, text)
    return text


def checked(check: Callable[[str], object], text: str, option: str) -> None:
    """A check from this module applied after parsing (when it depends on another option),
    refused in the same words: `argument --out: ...`."""
    from groundup.errors import UserError
    try:
        check(text)
    except argparse.ArgumentTypeError as e:
        raise UserError(f"argument {option}: {e}") from None
