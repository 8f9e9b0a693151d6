"""Paths as git sees them: path globs, and the `.gitignore`-aware walk over a workspace.

Shared by the agent's grep/glob and permission rules (groundup/agent/) and by the retrieval
index (groundup/rag/), so both agree on what a workspace contains. It sits below both layers.

Design choices:
- One walker (`walk_files`): it skips `.git/`, follows no symlinks (a link cannot smuggle an
  outside file into a search -- ripgrep's default too) and honours `.gitignore` files at
  every level plus `.git/info/exclude`, with git's rules: last match wins, `!` re-includes,
  a trailing `/` means directories only, a slash inside a pattern anchors it to its file's
  directory.
- Globs: `**` crosses directories, `*` and `?` do not; a pattern without a slash matches a
  file's name at any depth, as in .gitignore.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Iterator


# ---------------------------------------------------------------- globs

def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """A path glob: `**` crosses directories, `*` and `?` do not, `[...]` is a class."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")     # zero or more whole directories
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def path_matches(pattern: str, rel: str) -> bool:
    """Does a rule's path glob match `rel` (posix, relative to the root)? A pattern without
    a slash matches a file's name at any depth (`.env` covers `app/.env`), as in .gitignore."""
    pattern = pattern.lstrip("./") if pattern.startswith("./") else pattern
    if glob_to_regex(pattern).match(rel):
        return True
    # `src/**` should also cover `src` itself, and a directory rule its contents
    if rel.startswith(pattern.rstrip("/") + "/") and not any(ch in pattern for ch in "*?["):
        return True
    if "/" not in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], pattern)
    return False



# ---------------------------------------------------------------- .gitignore

class IgnoreRule:
    def __init__(self, base: str, line: str):
        self.negate = line.startswith("!")
        if self.negate:
            line = line[1:]
        if line.startswith("\\"):
            line = line[1:]                # `\#file`, `\!file`: a literal first character
        self.dir_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line             # a slash anywhere but the end anchors the pattern
        line = line.lstrip("/")
        pattern = line if anchored or line.startswith("**") else "**/" + line
        self.base = base                   # the directory of the .gitignore, "" for the root
        self.regex = glob_to_regex(pattern)

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        if self.base:
            if not rel.startswith(self.base + "/"):
                return False
            rel = rel[len(self.base) + 1:]
        return bool(self.regex.match(rel))


def read_ignore_file(path: Path, base: str) -> list[IgnoreRule]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    rules = []
    for line in text.splitlines():
        line = line.rstrip()               # git drops unescaped trailing spaces
        if line and not line.startswith("#"):
            rules.append(IgnoreRule(base, line))
    return rules


def is_ignored(rules: list[IgnoreRule], rel: str, is_dir: bool) -> bool:
    ignored = False
    for rule in rules:                     # last match wins
        if rule.matches(rel, is_dir):
            ignored = not rule.negate
    return ignored


def walk_files(root: Path, start: Path) -> Iterator[str]:
    """Yield files under `start` (a resolved path inside `root`) as sorted root-relative
    posix paths, skipping .git, symlinks and whatever .gitignore excludes."""
    rules = read_ignore_file(root / ".git" / "info" / "exclude", "")
    rel_start = start.relative_to(root).as_posix() if start != root else ""
    # the .gitignore files between the root and `start` apply too
    parts = rel_start.split("/") if rel_start else []
    for i in range(len(parts)):
        base = "/".join(parts[:i])
        rules = rules + read_ignore_file(root / base / ".gitignore", base)
        if is_ignored(rules, "/".join(parts[:i + 1]), True):
            return
    if start.is_file():
        yield rel_start
        return

    def visit(directory: Path, rel: str, rules: list[IgnoreRule]) -> Iterator[str]:
        rules = rules + read_ignore_file(directory / ".gitignore", rel)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name == ".git" or entry.is_symlink():
                continue
            child = f"{rel}/{entry.name}" if rel else entry.name
            is_dir = entry.is_dir()
            if is_ignored(rules, child, is_dir):
                continue
            if is_dir:
                yield from visit(Path(entry.path), child, rules)
            elif entry.is_file():
                yield child

    yield from visit(start, rel_start, rules)
