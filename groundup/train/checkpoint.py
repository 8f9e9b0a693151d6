"""Checkpoints that survive a kill at any instant, and that are checked before they are trusted.

Design choices:
- One file per checkpoint, `checkpoints/step_000123.pt`: a `torch.save` of a plain dict
  (model and optimizer state, step, data-loader position, RNG states, config). It is written
  with `groundup.io.atomic_write_bytes` (temp file, fsync, rename), so a SIGKILL leaves the
  previous checkpoints intact and no half file under the real name.
- Atomic rename does not protect against damage after the fact (a full disk, a bad copy, a
  truncating tool), so each checkpoint has a sidecar `step_000123.json` with its size and
  SHA-256, written after the data. A checkpoint counts only if the sidecar exists and matches
  and `torch.load` succeeds; otherwise it is reported on stderr and the previous one is tried.
- `weights_only=True` loading: a checkpoint is data, never code to execute.
- The newest `keep` checkpoints are kept (default 2): one to resume from, one to fall back to.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from groundup.io import atomic_write_bytes, atomic_write_json

_NAME = re.compile(r"^step_(\d+)\.pt$")


def _path(ckpt_dir: Path, step: int) -> Path:
    return ckpt_dir / f"step_{step:06d}.pt"


def list_checkpoints(ckpt_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file, newest first (verified or not)."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), d / m.group(0)) for m in map(_NAME.match, os.listdir(d)) if m]
    return sorted(found, reverse=True)


def save_checkpoint(ckpt_dir: str | os.PathLike, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    d = Path(ckpt_dir)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    path = _path(d, step)
    atomic_write_bytes(path, data)
    # the sidecar comes second: a checkpoint without one was interrupted and is not trusted
    atomic_write_json(path.with_suffix(".json"), {"step": step, "bytes": len(data),
                                                  "sha256": hashlib.sha256(data).hexdigest()})
    for _, old in list_checkpoints(d)[keep:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
    return path


def verify_and_load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one checkpoint; raise ValueError saying what is wrong with it."""
    side = path.with_suffix(".json")
    if not side.exists():
        raise ValueError("it has no .json sidecar (the write was interrupted)")
    try:
        info = json.loads(side.read_text())
    except ValueError:
        raise ValueError("its .json sidecar is corrupt") from None
    data = path.read_bytes()
    if len(data) != info["bytes"]:
        raise ValueError(f"it is {len(data)} bytes, expected {info['bytes']} (truncated)")
    if hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise ValueError("its SHA-256 does not match (corrupt)")
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as e:  # any unpickling failure means the same thing: not usable
        raise ValueError(f"torch.load failed: {e}") from None


def load_latest(ckpt_dir: str | os.PathLike, map_location: str | torch.device = "cpu",
                warn: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """The newest checkpoint that verifies, or None. Each one refused is reported via `warn`."""
    warn = warn or (lambda m: print(m, file=sys.stderr, flush=True))
    cks = list_checkpoints(ckpt_dir)
    for i, (step, path) in enumerate(cks):
        try:
            state = verify_and_load(path, map_location)
        except (ValueError, OSError) as e:
            nxt = f"trying {cks[i + 1][1].name}" if i + 1 < len(cks) else "no earlier checkpoint left"
            warn(f"checkpoint {path} is unusable: {e}; {nxt}")
            continue
        return state
    return None
