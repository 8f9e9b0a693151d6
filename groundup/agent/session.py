"""Durable sessions: `.groundup/sessions/<id>.jsonl`, one message per line.

Design choices:
- The message list *is* the session (mini-swe-agent's "the trajectory is the messages"):
  the file holds exactly the dicts of groundup/chat/types.py, so a session can be resumed,
  replayed, inspected with `jq`, or used as fine-tuning data without conversion.
- Each message is appended and fsync'ed the moment it exists (groundup.io.append_jsonl). A
  process killed with SIGKILL loses at most the line being written; the reader skips such a
  truncated last line with a warning instead of refusing the whole session.
- Ids start with the time (`20261125-184700-3fa2`) and a unique prefix is enough for
  `--resume`; `--continue` takes the session written to most recently.
"""

from __future__ import annotations

import datetime
import secrets
import sys
from pathlib import Path
from typing import Any, Callable

from groundup.errors import UserError
from groundup.io import append_jsonl, read_jsonl


def new_session_id() -> str:
    now = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{now}-{secrets.token_hex(2)}"


def _warn(msg: str) -> None:
    print(f"groundup: warning: {msg}", file=sys.stderr)


class Session:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.id = self.path.stem

    @classmethod
    def create(cls, directory: Path) -> "Session":
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        while True:
            path = directory / f"{new_session_id()}.jsonl"
            if not path.exists():
                return cls(path)

    @classmethod
    def find(cls, directory: Path, session_id: str) -> "Session":
        """A session by id, unique id prefix, or path to its file."""
        if session_id.endswith(".jsonl") and Path(session_id).is_file():
            return cls(Path(session_id))
        directory = Path(directory)
        exact = directory / f"{session_id}.jsonl"
        if exact.is_file():
            return cls(exact)
        matches = sorted(directory.glob(f"{session_id}*.jsonl")) if directory.is_dir() else []
        if len(matches) == 1:
            return cls(matches[0])
        if not matches:
            known = ", ".join(s.id for s in cls.list(directory)[-5:]) or "none yet"
            raise UserError(f"no session {session_id!r} in {directory} (recent: {known})")
        raise UserError(f"session id {session_id!r} is ambiguous: "
                        + ", ".join(m.stem for m in matches[:5]))

    @classmethod
    def latest(cls, directory: Path) -> "Session":
        sessions = cls.list(directory)
        if not sessions:
            raise UserError(f"no session to continue in {directory}; start one with "
                            "`groundup` or `groundup -p TASK`")
        return sessions[-1]

    @classmethod
    def list(cls, directory: Path) -> list["Session"]:
        directory = Path(directory)
        if not directory.is_dir():
            return []
        # oldest first by last write, so `--continue` picks the session used most recently
        paths = sorted(directory.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [cls(p) for p in paths]

    def append(self, message: dict[str, Any]) -> None:
        append_jsonl(self.path, message)

    def load(self, warn: Callable[[str], None] | None = _warn) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        messages = [m for m in read_jsonl(self.path, warn=warn) if isinstance(m, dict)]
        return repair(messages)

    def summary(self) -> str:
        """`id  N messages  first user line` for listings."""
        msgs = self.load(warn=None)
        first = next((m["content"] for m in msgs if m.get("role") == "user"), "")
        first = " ".join(str(first).split())[:60]
        return f"{self.id}  {len(msgs):>3} messages  {first}"


def repair(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Make a loaded history valid to send again: a run killed between an assistant's tool
    calls and their results leaves calls without answers, which the APIs reject. Each
    unanswered call gets a result saying it was interrupted."""
    out: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []        # calls of the last assistant turn not answered
    for m in messages:
        if pending and m.get("role") != "tool":
            out.extend(interrupted_result(c) for c in pending)
            pending = []
        out.append(m)
        if m.get("role") == "assistant":
            pending = list(m.get("tool_calls") or [])
        elif m.get("role") == "tool":
            pending = [c for c in pending if c.get("id") != m.get("tool_call_id")]
    out.extend(interrupted_result(c) for c in pending)
    return out


def interrupted_result(call: dict[str, Any]) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call.get("id"), "name": call.get("name"),
            "content": "error: interrupted before this call finished; check its effect "
                       "before retrying"}
