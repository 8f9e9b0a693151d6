"""The system prompt: who the agent is, where it is, what it can use, what it remembers.

Design choices:
- The full prompt (for capable models) has four parts: a short statement of the job and
  how to work; the environment (working directory, platform, date, a git status summary),
  so the model does not spend turns discovering them; the tools, one line each (the exact
  JSON schemas travel separately, through the provider's tools field); and memory -- the
  project's `AGENTS.md` (or `CLAUDE.md`) and the user's `~/.config/groundup/AGENTS.md`,
  the place where a team writes "run tests with make test" once instead of every session.
- The compact prompt is for our own small models (context of 1-2k tokens, trained on it):
  two lines. Their chat format renders the tool list compactly by itself, and only the core
  tools (tools.CORE_TOOLS) are offered with it.
- Memory files are clipped so that one large file cannot eat the context.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

MEMORY_FILES = ("AGENTS.md", "CLAUDE.md")
MAX_MEMORY_CHARS = 8000

INTRO = """\
You are groundup, a coding agent working in the user's repository through tools.
Work in small verified steps: look before you change (read_file, grep, glob), make the
smallest change that solves the task (edit_file for edits, write_file for new files), then
check it (run the tests with bash). Read a file before editing it. Paths are relative to
the working directory; you cannot touch anything outside it. If an action is denied, do not
retry it unchanged: adapt or explain. Use todo_write to plan work with several steps.
When the task is done, answer with a short summary of what you changed and how you checked
it, without calling a tool."""

COMPACT = ("You are a coding agent in {root}. Use the tools to inspect, fix and test the "
           "code, then reply with a one-line summary.")


def config_dir() -> Path:
    """~/.config/groundup, or $XDG_CONFIG_HOME/groundup when that is set."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "groundup"


def git_summary(root: Path) -> str:
    """`branch main, 2 changed files`, or why there is none. Never fails."""
    try:
        p = subprocess.run(["git", "status", "--porcelain=v1", "--branch"], cwd=root,
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"
    if p.returncode != 0:
        return "not a git repository"
    lines = p.stdout.splitlines()
    head = lines[0][3:] if lines and lines[0].startswith("## ") else "?"
    branch = head.split("...")[0].replace("No commits yet on ", "")
    changed = [ln for ln in lines[1:] if ln.strip()]
    if not changed:
        return f"branch {branch}, clean"
    shown = ", ".join(ln[3:] for ln in changed[:10]) + (" ..." if len(changed) > 10 else "")
    return f"branch {branch}, {len(changed)} changed file(s): {shown}"


def read_memory(root: Path) -> list[tuple[str, str]]:
    """(label, text) for the project's memory file and the user's."""
    found = []
    for name in MEMORY_FILES:
        p = root / name
        if p.is_file():
            found.append((name, p.read_text(encoding="utf-8", errors="replace")))
            break                          # AGENTS.md wins; CLAUDE.md is the fallback
    user = config_dir() / "AGENTS.md"
    if user.is_file():
        found.append((f"{user} (the user's own notes)",
                      user.read_text(encoding="utf-8", errors="replace")))
    return [(label, text if len(text) <= MAX_MEMORY_CHARS
             else text[:MAX_MEMORY_CHARS] + "\n[... clipped ...]") for label, text in found]


def system_prompt(root: Path, toolbox: Any = None, compact: bool = False,
                  intro: str | None = None) -> str:
    """The prompt; `intro` replaces the opening statement of the job (a subagent's own)."""
    root = Path(root).resolve()
    if compact:
        return COMPACT.format(root=root) + (f"\n{intro}" if intro else "")
    parts = [intro or INTRO, "", "# Environment",
             f"- working directory: {root}",
             f"- platform: {platform.system()} {platform.release()} ({platform.machine()})",
             f"- date: {datetime.date.today().isoformat()}",
             f"- git: {git_summary(root)}"]
    if toolbox is not None:
        parts += ["", "# Tools"]
        for s in toolbox.schemas():
            if s["name"].startswith("mcp__"):
                # a server's words stay in its tool definition, out of our instructions
                parts.append(f"- {s['name']}: a tool of the MCP server "
                             f"{s['name'].split('__')[1]!r}; see its definition")
            else:
                parts.append(f"- {s['name']}: {s['description']}")
    for label, text in read_memory(root):
        parts += ["", f"# Memory: {label}", text.strip()]
    return "\n".join(parts) + "\n"
