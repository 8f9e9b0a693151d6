"""Checkpoints and rewind: the files as they were before each of your turns changed them.

Before the agent's first write to a file in a user turn (write_file, edit_file), the file is
snapshotted -- its bytes, its mode, or the fact that it did not exist yet:

    .groundup/checkpoints/
        blobs/3f/a2c9...        file contents, named by their sha256 (stored once, however often)
        <session-id>.jsonl      {"turn": 2, "path": "calc.py", "blob": "3fa2c9...", "mode": 420}
                                {"turn": 2, "bash": "sed -i s/x/y/ calc.py"}

A turn is one message from the user (numbered from 1, as `groundup rewind --list` shows);
messages that hooks or compaction add are not turns. To go back to *before turn N*, every file
the agent wrote in turn N or later gets back the content it had at its first write from turn
N on -- which is what it held before turn N -- and a file that did not exist is removed.
The conversation goes back too: a new session holds the messages before turn N (the old
session file is kept, nothing in it is lost), and `--continue` picks it up.

Design choices:
- Content-addressed blobs under .groundup/ (which git ignores), not commits or stashes: the
  user's git history and index are never touched, and a file written in ten turns costs one
  blob per distinct content.
- Bytes and mode are restored exactly: line endings, a missing final newline, the exec bit.
- Only the agent's own file tools are covered. A file changed by a bash command (`sed -i`, a
  code generator, `git checkout`) is not: the rewind says so plainly and names the commands,
  as Claude Code does -- snapshotting the whole workspace before every command would cost
  more than it saves. Files changed by hand are restored like any other (the preview shows
  the diff first).
- Before a rewind overwrites anything, the current versions are snapshotted too (a record
  with `"rewind"`: a stamp shared by the records of one rewind), so a rewind never destroys the
  only copy of a file -- and `groundup rewind --undo` puts them back. An undo is itself a
  rewind (it snapshots what it overwrites), so undoing it again redoes.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from difflib import unified_diff
from pathlib import Path
from typing import Any

from groundup.agent.permissions import ConfinementError, confine
from groundup.agent.session import Session
from groundup.chat.types import ToolCall
from groundup.errors import UserError
from groundup.io import append_jsonl, atomic_write_bytes, read_jsonl

FILE_TOOLS = ("write_file", "edit_file")


def is_prompt(message: dict[str, Any]) -> bool:
    """A message the user typed: a turn. Hooks' and compaction's user messages are not."""
    return message.get("role") == "user" and not message.get("hook") and not message.get("summary")


def turn_starts(messages: list[dict[str, Any]]) -> list[int]:
    """The index in `messages` of each turn's prompt (turn N starts at [N - 1])."""
    return [i for i, m in enumerate(messages) if is_prompt(m)]


@dataclass
class Change:
    """What a rewind does to one file."""
    path: str
    current: bytes | None        # None: the file does not exist now
    target: bytes | None         # None: it did not exist before the turn (remove it)
    mode: int | None

    def diff(self) -> str:
        if self.current is None:
            return f"restore {self.path} (deleted since)"
        if self.target is None:
            return f"remove {self.path} (created by the agent)"
        try:
            a, b = self.current.decode("utf-8"), self.target.decode("utf-8")
        except UnicodeDecodeError:
            return f"restore {self.path} (binary, {len(self.current)} -> {len(self.target)} bytes)"
        lines = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                        for line in unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                                 f"a/{self.path} (now)", f"b/{self.path} (restored)", n=2))
        return lines.rstrip("\n") or f"restore {self.path} (mode or line endings only)"


class Checkpoints:
    def __init__(self, root: Path, extra_dirs: tuple = ()):
        self.root = Path(root).resolve()
        self.extra_dirs = tuple(extra_dirs)
        self.directory = self.root / ".groundup" / "checkpoints"
        self.seen: set[tuple[str, int, str]] = set()     # (session, turn, path) snapshotted

    # ------------------------------------------------------------ recording (the loop)

    def before(self, call: ToolCall, session: str, turn: int) -> None:
        """Called before each tool call runs: snapshot a file about to be written for the
        first time this turn; note a bash command (its effects are not covered)."""
        if call.name == "bash" and isinstance(call.arguments.get("command"), str):
            append_jsonl(self.log(session), {"turn": turn, "bash": call.arguments["command"]})
            return
        path = call.arguments.get("path")
        if call.name not in FILE_TOOLS or not isinstance(path, str):
            return
        try:
            resolved = confine(self.root, path, self.extra_dirs)
        except ConfinementError:
            return                                         # the tool will refuse it
        rel = self.rel(resolved)
        if (session, turn, rel) in self.seen:
            return
        self.seen.add((session, turn, rel))
        append_jsonl(self.log(session), {"turn": turn, "path": rel, **self.snapshot(resolved)})

    def snapshot(self, path: Path) -> dict[str, Any]:
        if not path.is_file():
            return {"blob": None, "mode": None}
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        blob = self.blob_path(digest)
        if not blob.exists():
            atomic_write_bytes(blob, data)
        return {"blob": digest, "mode": path.stat().st_mode & 0o7777}

    def log(self, session: str) -> Path:
        return self.directory / f"{session}.jsonl"

    def blob_path(self, digest: str) -> Path:
        return self.directory / "blobs" / digest[:2] / digest[2:]

    def rel(self, p: Path) -> str:
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.as_posix()                            # in an --add-dir directory

    def records(self, session: str) -> list[dict[str, Any]]:
        path = self.log(session)
        return list(read_jsonl(path)) if path.is_file() else []

    # ------------------------------------------------------------ rewinding

    def plan(self, session: str, turn: int) -> tuple[list[Change], list[str]]:
        """(file changes that bring the workspace back to before `turn`, bash commands run
        since whose effects are not covered)."""
        first: dict[str, dict[str, Any]] = {}
        bash = []
        for r in self.records(session):
            if r.get("rewind") or r.get("turn", 0) < turn:
                continue
            if "bash" in r:
                bash.append(r["bash"])
            elif r["path"] not in first:
                first[r["path"]] = r                       # the earliest snapshot from `turn` on
        changes = []
        for rel, r in first.items():
            path = self.root / rel
            current = path.read_bytes() if path.is_file() else None
            target = self.blob_path(r["blob"]).read_bytes() if r["blob"] else None
            mode_now = path.stat().st_mode & 0o7777 if path.is_file() else None
            if current == target and (target is None or mode_now == r["mode"]):
                continue                                   # already as it was
            changes.append(Change(rel, current, target, r["mode"]))
        return changes, bash

    def last_rewind(self) -> tuple[str, str, list[dict[str, Any]]] | None:
        """(session, stamp, its records) of the newest rewind in this workspace, any session
        (a rewind's records live in the log of the session it rewound)."""
        best = None
        for log in sorted(self.directory.glob("*.jsonl")):
            for r in read_jsonl(log):
                stamp = r.get("rewind")
                if isinstance(stamp, str) and (best is None or stamp > best[1]):
                    best = (log.stem, stamp)
        if best is None:
            return None
        return (*best, [r for r in self.records(best[0]) if r.get("rewind") == best[1]])

    def plan_undo(self) -> tuple[str, str, list[Change]]:
        """(session, stamp, the file changes that put back what the newest rewind overwrote)."""
        last = self.last_rewind()
        if last is None:
            raise UserError("nothing to undo: no rewind has been made in this workspace")
        session, stamp, records = last
        changes = []
        for r in records:
            path = self.root / r["path"]
            current = path.read_bytes() if path.is_file() else None
            target = self.blob_path(r["blob"]).read_bytes() if r["blob"] else None
            if current != target or (target is not None and path.stat().st_mode & 0o7777 != r["mode"]):
                changes.append(Change(r["path"], current, target, r["mode"]))
        return session, stamp, changes

    def apply(self, session: str, changes: list[Change]) -> None:
        # sortable and unique per rewind: --undo takes the newest
        stamp = time.strftime("%Y%m%d-%H%M%S") + f".{time.time_ns() % 10**9:09d}"
        for c in changes:                                  # keep what is about to be replaced
            append_jsonl(self.log(session), {"rewind": stamp, "path": c.path,
                                             **self.snapshot(self.root / c.path)})
        for c in changes:
            path = self.root / c.path
            if c.target is None:
                if path.is_file():
                    path.unlink()
            else:
                atomic_write_bytes(path, c.target, mode=0o644 if c.mode is None else c.mode)

    def fork(self, old: Session, turn: int, directory: Path) -> Session:
        """A new session with the conversation before `turn` and the checkpoints of the
        turns before it; the old session file stays as it is."""
        messages = old.load()
        starts = turn_starts(messages)
        new = Session.create(directory)
        for m in messages[:starts[turn - 1]]:
            new.append(m)
        new.path.touch()                       # exists even when empty: --continue finds it
        for r in self.records(old.id):
            if not r.get("rewind") and r.get("turn", 0) < turn:
                append_jsonl(self.log(new.id), r)
        return new


def describe_turns(session: Session, checkpoints: Checkpoints) -> list[str]:
    """One line per turn: its number, the prompt, the files snapshotted, the commands run."""
    messages = session.load(warn=None)
    files: dict[int, list[str]] = {}
    commands: dict[int, int] = {}
    for r in checkpoints.records(session.id):
        if "bash" in r:
            commands[r["turn"]] = commands.get(r["turn"], 0) + 1
        elif not r.get("rewind"):
            files.setdefault(r["turn"], []).append(r["path"])
    out = []
    for n, i in enumerate(turn_starts(messages), 1):
        prompt = " ".join(str(messages[i].get("content") or "").split())[:60]
        extra = f"  files: {', '.join(files[n])}" if n in files else ""
        extra += f"  bash: {commands[n]} command(s)" if n in commands else ""
        out.append(f"{n:>3}  {prompt}{extra}")
    return out


def check_turn(session: Session, turn: int) -> None:
    count = len(turn_starts(session.load(warn=None)))
    if count == 0:
        raise UserError(f"session {session.id} has no turns to rewind")
    if not 1 <= turn <= count:
        raise UserError(f"turn {turn} does not exist: session {session.id} has turns 1-{count} "
                        "(`groundup rewind --list` shows them)")


def preview(changes: list[Change], bash: list[str], turn: int) -> str:
    lines = [f"rewind to before turn {turn}:"]
    if not changes:
        lines.append("files: nothing to restore (the agent's file edits since then are undone "
                     "already, or there were none)")
    for c in changes:
        lines.append(c.diff())
    if bash:
        lines.append(f"not covered: {len(bash)} bash command(s) ran since; files they changed "
                     "are not restored:")
        lines += [f"  $ {cmd}" for cmd in bash[:10]] + (["  ..."] if len(bash) > 10 else [])
    return "\n".join(lines)
