"""Custom slash commands: prompts you type often, saved as Markdown files.

    .groundup/commands/NAME.md             the project's (commit them: the team shares them)
    ~/.config/groundup/commands/NAME.md    yours, in every project

A file is a prompt, with optional front matter:

    ---
    description: review the staged changes
    ---
    Review the staged diff (`git diff --cached`) for bugs. Focus on: $ARGUMENTS

`/review error handling` then sends the body with `$ARGUMENTS` replaced by `error handling`
(a body without `$ARGUMENTS` gets the arguments appended, so none are lost). They work in
the interactive mode, listed in `/help`, and headless: `groundup -p "/review error handling"`.

Design choices:
- A command is only text for the model: it runs with the same tools, permissions and hooks
  as anything the user types, so a command file cannot do more than its user could.
- The project's command wins over the user's of the same name (it is what the team expects
  in this repository); the interactive mode's own commands (/help, /status...) win over both.
- The front matter parser is the small subset both commands and subagents (subagents.py)
  use: `key: value` lines between two `---` lines. No YAML dependency for that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from groundup.agent.prompt import config_dir
from groundup.errors import UserError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def parse_front_matter(text: str, where: str) -> tuple[dict[str, str], str]:
    """(front matter as strings, body) of a Markdown file; no front matter is fine."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}, text.strip()
    meta: dict[str, str] = {}
    for i, line in enumerate(lines[1:], 1):
        if line.strip() == "---":
            return meta, "\n".join(lines[i + 1:]).strip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise UserError(f"{where}:{i + 1}: front matter lines are `key: value` (got {line!r})")
        meta[key.strip().lower()] = value.strip().strip("\"'")
    raise UserError(f"{where}: the front matter opened with --- is never closed with ---")


@dataclass(frozen=True)
class Command:
    name: str
    description: str
    body: str
    source: Path

    def expand(self, arguments: str) -> str:
        arguments = arguments.strip()
        if "$ARGUMENTS" in self.body:
            return self.body.replace("$ARGUMENTS", arguments)
        return f"{self.body}\n\nARGUMENTS: {arguments}" if arguments else self.body


def command_dirs(root: Path) -> list[Path]:
    """Lowest precedence first."""
    return [config_dir() / "commands", Path(root) / ".groundup" / "commands"]


def load_commands(root: Path) -> dict[str, Command]:
    """name -> Command, from the user's directory and then the project's (which wins)."""
    found: dict[str, Command] = {}
    for directory in command_dirs(root):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.md")):
            if not NAME.fullmatch(path.stem):
                continue                       # not a name a user could type after /
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise UserError(f"{path} is not UTF-8 text") from None
            meta, body = parse_front_matter(text, str(path))
            if not body:
                raise UserError(f"{path} is empty: a command file holds the prompt to send")
            first = body.splitlines()[0].strip()
            found[path.stem] = Command(path.stem, meta.get("description") or first[:60], body, path)
    return found


def expand_command(text: str, root: Path) -> str | None:
    """The prompt that `/name args` stands for, or None when `text` names no custom command."""
    if not text.startswith("/"):
        return None
    name, _, arguments = text[1:].partition(" ")
    command = load_commands(root).get(name)
    return command.expand(arguments) if command else None
