"""Shared helpers for the agent tests: temporary git repositories and replay scripts.

Nothing here imitates our own code: the tests drive the real loop and the real tools; only
the *model* is a recording (groundup/providers/replay.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PY = sys.executable
GROUNDUP = [PY, "-m", "groundup"]


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout


def make_repo(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return root


BUGGY = {
    "calc.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
    "test_calc.py": "from calc import add, mul\n\nassert add(2, 3) == 5, add(2, 3)\n"
                    "assert mul(2, 3) == 6\nprint('all tests passed')\n",
}


def script(path: Path, turns: list[dict[str, Any]]) -> str:
    """Write a replay script; return its model string."""
    path.write_text("".join(json.dumps(t) + "\n" for t in turns))
    return f"replay:{path}"


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def turn(*calls: dict[str, Any], content: str = "") -> dict[str, Any]:
    return {"content": content, "tool_calls": list(calls)}


def cli_env(home: Path) -> dict[str, str]:
    """An environment whose user settings live in `home` (never the real ~/.config)."""
    env = dict(os.environ, XDG_CONFIG_HOME=str(home / "config"), HOME=str(home))
    for key in ("GROUNDUP_MODEL", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                "ANTHROPIC_BASE_URL"):
        env.pop(key, None)
    return env


def run_cli(args: list[str], cwd: Path, home: Path, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*GROUNDUP, *args], cwd=cwd, env=cli_env(home), capture_output=True,
                          text=True, timeout=timeout, input=input)
