"""Durable file helpers shared by every layer: nothing half-written, nothing lost.

- `atomic_write_*`: write to a temporary file in the same directory, fsync, then rename over
  the target. A crash leaves either the old file or the new one, never a torn mix.
- `append_jsonl`: append one JSON object per line and flush+fsync, so a killed process loses at
  most the line in flight (readers skip a truncated last line).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        # the temp file is ours alone; remove it so no debris is left, then re-raise
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str, mode: int | None = None,
                      newline: str | None = None) -> None:
    if newline is not None:
        text = text.replace("\n", newline)
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(obj, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike, warn=None) -> Iterator[Any]:
    """Yield objects from a JSONL file; a truncated/corrupt line is skipped with a warning."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                if warn is not None:
                    warn(f"{path}:{lineno}: skipping a truncated or corrupt line")
