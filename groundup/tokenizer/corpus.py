"""The embedded corpus and the reading of training text.

Design choices:
- The default corpus is the Python standard library that ships with the running interpreter
  (`sysconfig.get_paths()["stdlib"]`): ~11 MB of real, varied Python on every machine, no
  download. Its test suites are left out (they are a third of it and very repetitive), and so
  is `site-packages` (what a user installed is not part of "the interpreter").
- File order is sorted by path, so a corpus -- and anything trained on it -- is deterministic.
- Training input may mix paths and in-memory texts: a `pathlib.Path` is always a path; a `str`
  is a path when it names an existing file or directory (and has no newline), text otherwise.
- Files are read as UTF-8 with invalid bytes replaced: a stray Latin-1 file must not stop a
  training run, and BPE works on the UTF-8 bytes of the text anyway.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path
from typing import Iterable, Iterator

from groundup.errors import UserError

# directories that hold test suites (or third-party code) rather than library source
EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages",
                           "__pycache__"})
# suffixes picked up when a directory is given as training input
TEXT_SUFFIXES = frozenset({".py", ".pyi", ".txt", ".md", ".rst"})


def is_generated_table(path: Path) -> bool:
    """A stdlib file that is generated data, not code: a charmap codec in encodings/ (a
    256-entry `decoding_table` of escapes) or pydoc_data/topics.py (the language reference as
    strings). 71 files, ~17% of the corpus's bytes (docs/lab/2026-12-03-speedrun-second-push.md)."""
    if path.parent.name == "pydoc_data" and path.name == "topics.py":
        return True
    return (path.parent.name == "encodings" and path.suffix == ".py"
            and "decoding_table = (" in path.read_text(encoding="utf-8", errors="replace"))


def default_corpus_files() -> list[Path]:
    """The `.py` files of this interpreter's standard library, without tests; sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS]
        for name in filenames:
            if name.endswith(".py") and not name.startswith("test_"):
                files.append(Path(dirpath) / name)
    return sorted(files)


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named directly, plus the text files found under directories (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in TEXT_SUFFIXES
                           and not (EXCLUDED_DIRS & set(f.relative_to(p).parts[:-1])))
            if not found:
                raise UserError(f"no text files ({', '.join(sorted(TEXT_SUFFIXES))}) under "
                                f"{p} -- give files or a directory that holds some")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"corpus path {p} does not exist -- give existing files or directories")
    return out


def _is_path(item: object) -> bool:
    if isinstance(item, os.PathLike):
        return True
    return (isinstance(item, str) and "\n" not in item and len(item) < 4096
            and os.path.exists(item))


def iter_texts(paths_or_texts: Iterable[str | os.PathLike] | str | os.PathLike) -> Iterator[str]:
    """Yield the texts of a training input: files (directories expanded) and literal strings."""
    if isinstance(paths_or_texts, (str, os.PathLike)):
        paths_or_texts = [paths_or_texts]
    for item in paths_or_texts:
        if _is_path(item):
            for f in expand_paths([item]):
                try:
                    yield f.read_bytes().decode("utf-8", errors="replace")
                except OSError as e:
                    raise UserError(f"cannot read corpus file {f}: {e.strerror}") from None
        elif isinstance(item, str):
            yield item
        else:
            raise UserError(f"training input must be paths or strings, got {type(item).__name__}")
