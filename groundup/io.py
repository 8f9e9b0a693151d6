"""Durable file helpers shared by every layer: nothing half-written, nothing lost.

- `atomic_write_*`: write to a temporary file in the same directory, fsync, then rename over
  the target. A crash leaves either the old file or the new one, never a torn mix.
- `append_jsonl`: append one JSON object per line and flush+fsync, so a killed process loses at
  most the line in flight; the next append starts on a clean line after a torn one.
- `read_jsonl`: yields the objects it can decode and skips, with a warning, any line it cannot
  (torn, not UTF-8, not JSON, not an object) -- a damaged log never stops a resume.
- `safetensors_header`: a weights file checked whole (header and length) without torch.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from groundup.errors import UserError, warn


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
    """Append one record as a line, in one write, flushed and fsync'ed.

    If the file does not end with a newline, the previous writer died mid-line: the new record
    starts on a fresh line, so it is never glued onto the torn fragment (which the reader then
    skips on its own, with a warning) -- a crash costs at most the record that was in flight.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # backslashreplace: a lone surrogate (undecodable bytes from a tool) becomes a JSON \u escape
    # that reads back as the same string, instead of an exception that loses the record
    line = (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
    with open(path, "a+b") as f:
        end = f.seek(0, os.SEEK_END)
        if end:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                line = b"\n" + line
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike, warn: Callable[[str], None] | None = warn,
               max_warnings: int = 3) -> Iterator[dict[str, Any]]:
    """Yield each line's JSON object. A line that cannot be used -- torn by a crash, bytes that
    are not UTF-8, zeros left by a filesystem after a power cut, JSON that is not an object --
    is skipped with a warning (the first `max_warnings`, then a count), never an exception."""
    skipped = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
                why = None if isinstance(obj, dict) else "not a JSON object"
            except UnicodeDecodeError:
                why = "not UTF-8"
            except (json.JSONDecodeError, RecursionError):
                why = "truncated or corrupt JSON"
            if why is None:
                yield obj
                continue
            skipped += 1
            if warn is not None and skipped <= max_warnings:
                warn(f"{path}:{lineno}: skipping a truncated or corrupt line ({why})")
    if warn is not None and skipped > max_warnings:
        warn(f"{path}: skipped {skipped - max_warnings} more unreadable lines")


def safetensors_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a .safetensors file, after checking that the file is whole: the
    format is an 8-byte little-endian header length, the header (tensor name -> dtype, shape,
    [begin, end) byte offsets), then the data -- so a truncated or garbled file is caught here,
    in pure Python, before torch is imported or a tensor is read."""
    path = Path(path)
    size = path.stat().st_size
    what = f"{path} is not a valid safetensors file"
    fix = "re-export or re-train it (or restore it from a copy)"
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UserError(f"{what}: it is {size} bytes, shorter than its header -- {fix}")
        n = int.from_bytes(head, "little")
        if n > size - 8 or n > 100_000_000:
            raise UserError(f"{what}: its header claims {n} bytes, the file holds {size} "
                            f"(truncated or corrupt) -- {fix}")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{what}: its header is not JSON (corrupt) -- {fix}") from None
    if not isinstance(header, dict):
        raise UserError(f"{what}: its header is not a JSON object (corrupt) -- {fix}")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) and o >= 0 for o in offsets) and offsets[0] <= offsets[1]):
            raise UserError(f"{what}: tensor {name!r} has no valid data offsets (corrupt) -- {fix}")
        end = max(end, offsets[1])
    if 8 + n + end != size:
        raise UserError(f"{what}: its tensors need {8 + n + end} bytes, the file holds {size} "
                        f"({'truncated' if size < 8 + n + end else 'trailing bytes'}) -- {fix}")
    return header
