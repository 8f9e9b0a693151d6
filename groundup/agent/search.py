"""Finding things in a workspace: grep, glob and list_dir.

Design choices:
- One walker (`walk_files`, groundup/gitignore.py, shared with the retrieval index) feeds
  both grep and glob, so the two agree on what exists: no `.git/`, no symlinks, `.gitignore`
  and `.git/info/exclude` honoured with git's rules.
- grep uses ripgrep when it is installed (fast on big trees) and this walker plus Python's
  `re` otherwise. Both outputs are normalised to the same shape -- `path:line:text`, paths
  relative to the root, sorted -- so a model sees the same result either way (a test checks).
- Results are capped with a note saying so, so one broad pattern cannot flood the context.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from groundup.gitignore import glob_to_regex, path_matches, walk_files  # noqa: F401 (re-exported)

MAX_GREP_LINES = 250
MAX_GLOB_FILES = 250
MAX_LIST_ENTRIES = 1000
MAX_LINE_CHARS = 300


# ---------------------------------------------------------------- grep

def find_ripgrep() -> str | None:
    found = shutil.which("rg")
    if found:
        return found
    # a venv's bin/ is not always on PATH (e.g. `.venv/bin/groundup` run directly)
    beside = Path(sys.executable).parent / "rg"
    return str(beside) if beside.exists() else None


def _clip(line: str) -> str:
    line = line.rstrip("\r")
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [...]"


def grep_python(root: Path, start: Path, pattern: str, glob: str | None,
                visible: Callable[[str], bool]) -> list[tuple[str, int, str]]:
    regex = re.compile(pattern)
    base = start.relative_to(root).as_posix() if start != root else ""
    hits = []
    for rel in walk_files(root, start):
        if not visible(rel):
            continue
        sub = rel[len(base) + 1:] if base and rel != base else rel
        if glob and not path_matches(glob, sub):
            continue
        try:
            data = (root / rel).read_bytes()
        except OSError:
            continue
        if b"\x00" in data:                # binary, as ripgrep decides by default
            continue
        for n, line in enumerate(data.decode("utf-8", errors="replace").split("\n"), 1):
            if regex.search(line):
                hits.append((rel, n, _clip(line)))
    return hits


def grep_ripgrep(rg: str, root: Path, start: Path, pattern: str, glob: str | None,
                 visible: Callable[[str], bool]) -> list[tuple[str, int, str]]:
    rel_start = start.relative_to(root).as_posix() if start != root else "."
    cmd = [rg, "--line-number", "--no-heading", "--with-filename", "--null", "--color=never",
           "--hidden", "--no-ignore-global", "--no-ignore-dot", "--no-require-git",
           "--glob", "!.git"]
    if glob:
        cmd += ["--glob", glob]
    cmd += ["--regexp", pattern, "--", rel_start]
    p = subprocess.run(cmd, cwd=root, capture_output=True, timeout=120)
    if p.returncode not in (0, 1):         # 1 = no match; 2 = error (e.g. a bad regex)
        raise ValueError(p.stderr.decode("utf-8", errors="replace").strip())
    hits = []
    for raw in p.stdout.decode("utf-8", errors="replace").split("\n"):
        if not raw:
            continue
        path, _, rest = raw.partition("\x00")
        num, _, text = rest.partition(":")
        path = path[2:] if path.startswith("./") else path
        if visible(path):
            hits.append((path, int(num), _clip(text)))
    return hits


def grep(root: Path, start: Path, pattern: str, glob: str | None,
         visible: Callable[[str], bool], use_ripgrep: bool | None = None) -> str:
    """Search file contents for a regex; `path:line:text` lines, or a note when none."""
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"invalid regex {pattern!r}: {e}") from None
    rg = find_ripgrep() if use_ripgrep in (None, True) else None
    if use_ripgrep and rg is None:
        raise RuntimeError("ripgrep (rg) is not installed")
    hits = (grep_ripgrep(rg, root, start, pattern, glob, visible) if rg
            else grep_python(root, start, pattern, glob, visible))
    hits.sort(key=lambda h: (h[0], h[1]))
    if not hits:
        return "no matches"
    lines = [f"{p}:{n}:{t}" for p, n, t in hits[:MAX_GREP_LINES]]
    if len(hits) > MAX_GREP_LINES:
        lines.append(f"[{len(hits) - MAX_GREP_LINES} more matches not shown: narrow the "
                     "pattern, path or glob]")
    return "\n".join(lines)


# ---------------------------------------------------------------- glob, list_dir

def glob_files(root: Path, start: Path, pattern: str, visible: Callable[[str], bool]) -> str:
    """Files under `start` whose path relative to `start` matches the glob."""
    regex = glob_to_regex(pattern.lstrip("./") if pattern.startswith("./") else pattern)
    base = start.relative_to(root).as_posix() if start != root else ""
    found = []
    for rel in walk_files(root, start):
        sub = rel[len(base) + 1:] if base else rel
        if regex.match(sub) and visible(rel):
            found.append(rel)
    if not found:
        return "no files match"
    out = found[:MAX_GLOB_FILES]
    if len(found) > MAX_GLOB_FILES:
        out.append(f"[{len(found) - MAX_GLOB_FILES} more files not shown: narrow the pattern]")
    return "\n".join(out)


def list_dir(root: Path, directory: Path, visible: Callable[[str], bool]) -> str:
    """One entry per line: `name/` for directories, `name -> target` for symlinks."""
    lines = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.name == ".git":
            continue
        rel = (directory / entry.name).relative_to(root).as_posix()
        if not visible(rel):
            continue
        if entry.is_symlink():
            lines.append(f"{entry.name} -> {os.readlink(entry.path)}")
        elif entry.is_dir():
            lines.append(entry.name + "/")
        else:
            lines.append(entry.name)
    if not lines:
        return "(empty directory)"
    if len(lines) > MAX_LIST_ENTRIES:
        lines = lines[:MAX_LIST_ENTRIES] + [f"[{len(lines) - MAX_LIST_ENTRIES} more entries]"]
    return "\n".join(lines)
