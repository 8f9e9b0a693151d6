"""Hooks: the user's own commands, run at fixed points of the agent's life.

In the settings (any of the three files, merged):

    "hooks": {
      "PreToolUse":       [{"matcher": "bash|edit_file", "command": "./guard.sh", "timeout": 10}],
      "PostToolUse":      [{"matcher": "edit_file|write_file", "command": "black -q ."}],
      "UserPromptSubmit": [{"command": "cat docs/conventions.md"}],
      "Stop":             [{"command": "make -s test >&2 || exit 2"}],
      "SessionStart":     [{"command": "git log --oneline -5"}]}

(Claude Code's nested form, `{"matcher": ..., "hooks": [{"type": "command", "command": ...}]}`,
is read too, so its settings can be copied over.) `matcher` is a regular expression that must
match the whole tool name; none, "" or "*" match every tool.

Each hook runs with the workspace as cwd and gets one JSON object on stdin, the same fields
as Claude Code's:

    {"session_id", "transcript_path", "cwd", "hook_event_name",
     "tool_name", "tool_input"              PreToolUse, PostToolUse
     "tool_response": {"content", "is_error"}          PostToolUse
     "prompt"                               UserPromptSubmit
     "stop_hook_active"                     Stop (true when a Stop hook already sent it back)
     "source": "startup" | "resume" | "clear"          SessionStart}

What its exit code means:

    0      go on; for UserPromptSubmit and SessionStart, stdout is added for the model to read
    2      block, and stderr says why -- PreToolUse: the call is refused and the model reads
           the reason; Stop: the agent is told the reason and takes another turn;
           PostToolUse: the model reads it beside the result; UserPromptSubmit: the prompt
           is dropped and the user reads it
    other  a warning for the user (stderr shown); the run goes on

Design choices:
- A hook is the user's code, not the model's: it runs outside the sandbox, but never
  unseen. Every run is an event (`{"type": "hook", ...}`) that the terminal shows and
  stream-json prints, `/hooks` and `groundup hooks` list them with their files, and hooks
  from the project's committed `.groundup/settings.json` -- which arrives with a `git
  clone` -- run only once the user approved them (see `trust`); the user's own files and
  `settings.local.json` are trusted, as the user wrote them.
- A hook that hangs is killed with its whole process group at its timeout (default 60 s,
  as in Claude Code) and counts as a warning: a broken hook must not stall the agent.
- Matching hooks of one event run one after another, in settings order, not in parallel:
  two PostToolUse formatters on the same file must not race.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from groundup.errors import UserError
from groundup.io import atomic_write_json

EVENTS = ("PreToolUse", "PostToolUse", "UserPromptSubmit", "Stop", "SessionStart")
TOOL_EVENTS = ("PreToolUse", "PostToolUse")
DEFAULT_TIMEOUT = 60.0
MAX_OUTPUT = 10_000          # characters of a hook's stdout/stderr passed on


@dataclass(frozen=True)
class Hook:
    event: str
    command: str
    matcher: str = ""
    timeout: float = DEFAULT_TIMEOUT
    source: str = ""         # the settings file it came from
    project: bool = False    # from the committed project settings: needs approval

    def matches(self, tool: str | None) -> bool:
        if self.event not in TOOL_EVENTS or self.matcher in ("", "*"):
            return True
        return tool is not None and re.fullmatch(self.matcher, tool) is not None

    def describe(self) -> str:
        on = f" [{self.matcher}]" if self.event in TOOL_EVENTS and self.matcher else ""
        return f"{self.event}{on}: {self.command}  (timeout {self.timeout:g}s, {self.source})"


def parse_hooks(value: Any, where: str, project: bool = False) -> list[Hook]:
    """The hooks of one settings file's "hooks" object; UserError naming the file if wrong."""
    if not isinstance(value, dict):
        raise UserError(f"{where}: 'hooks' must be an object such as "
                        '{"PreToolUse": [{"matcher": "bash", "command": "..."}]}')
    hooks = []
    for event, entries in value.items():
        if event not in EVENTS:
            raise UserError(f"{where}: unknown hook event {event!r} (use one of {', '.join(EVENTS)})")
        if not isinstance(entries, list):
            raise UserError(f"{where}: hooks.{event} must be a list of "
                            '{"matcher": ..., "command": ...} objects')
        for entry in entries:
            if not isinstance(entry, dict):
                raise UserError(f"{where}: each entry of hooks.{event} must be an object")
            matcher = entry.get("matcher") or ""
            if not isinstance(matcher, str):
                raise UserError(f"{where}: hooks.{event}: 'matcher' must be a string")
            try:
                re.compile(matcher)
            except re.error as e:
                raise UserError(f"{where}: hooks.{event}: matcher {matcher!r} is not a valid "
                                f"regular expression ({e})") from None
            # the flat form, or Claude Code's {"matcher", "hooks": [{"type", "command"}]}
            inner = entry["hooks"] if "hooks" in entry else [entry]
            if not isinstance(inner, list):
                raise UserError(f"{where}: hooks.{event}: 'hooks' must be a list of "
                                '{"type": "command", "command": ...} objects')
            for h in inner:
                if not isinstance(h, dict) or not isinstance(h.get("command"), str) \
                        or not h["command"].strip():
                    raise UserError(f"{where}: hooks.{event}: each hook needs a \"command\" string")
                timeout = h.get("timeout", DEFAULT_TIMEOUT)
                if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
                    raise UserError(f"{where}: hooks.{event}: 'timeout' must be a positive number "
                                    "of seconds")
                hooks.append(Hook(event, h["command"], matcher, float(timeout), where, project))
    return hooks


# ---------------------------------------------------------------- approval of project hooks

def digest(hooks: list[Hook]) -> str:
    """What was approved: the project's hooks exactly (any change needs a new approval)."""
    text = json.dumps([[h.event, h.matcher, h.command, h.timeout] for h in hooks if h.project])
    return hashlib.sha256(text.encode()).hexdigest()


def trust_file(config: Path) -> Path:
    return config / "trusted-hooks.json"


def is_trusted(config: Path, root: Path, hooks: list[Hook]) -> bool:
    if not any(h.project for h in hooks):
        return True
    try:
        approved = json.loads(trust_file(config).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(approved, dict) and approved.get(str(root)) == digest(hooks)


def trust(config: Path, root: Path, hooks: list[Hook]) -> None:
    path = trust_file(config)
    try:
        approved = json.loads(path.read_text(encoding="utf-8"))
        approved = approved if isinstance(approved, dict) else {}
    except (OSError, ValueError):
        approved = {}
    approved[str(root)] = digest(hooks)
    atomic_write_json(path, approved)


# ---------------------------------------------------------------- running them

@dataclass
class Outcome:
    """What the hooks of one event decided together."""
    blocked: bool = False
    reason: str = ""                                   # stderr of the hooks that blocked
    context: list[str] = field(default_factory=list)   # stdout for the model (exit 0)


@dataclass
class Hooks:
    hooks: list[Hook] = field(default_factory=list)
    root: Path = Path(".")

    def listing(self) -> list[str]:
        return [h.describe() for h in self.hooks]

    def run(self, event: str, payload: dict[str, Any], tool: str | None = None,
            emit: Callable[[dict[str, Any]], None] | None = None) -> Outcome:
        """Run every hook of `event` that matches `tool`, in order; a block stops the rest.
        Each run is reported to `emit` (the agent's events)."""
        out = Outcome()
        for hook in self.hooks:
            if hook.event != event or not hook.matches(tool):
                continue
            code, stdout, stderr, seconds = run_hook(hook, {**payload, "hook_event_name": event},
                                                     self.root)
            if code == 0:
                outcome = "ok"
                if stdout.strip():
                    out.context.append(stdout.strip())
            elif code == 2:
                outcome = "blocked"
                out.blocked = True
                out.reason = stderr.strip() or f"blocked by the {event} hook `{hook.command}`"
            else:
                outcome = "timeout" if code is None else "warning"
            if emit is not None:
                emit({"type": "hook", "event": event, "command": hook.command,
                               "tool": tool, "exit_code": code, "outcome": outcome,
                               "stderr": stderr.strip(), "seconds": round(seconds, 3)})
            if out.blocked:
                break
        return out


def run_hook(hook: Hook, payload: dict[str, Any], root: Path) -> tuple[int | None, str, str, float]:
    """(exit code or None on timeout, stdout, stderr, seconds). The hook heads a process group
    of its own, killed whole when it overruns (or on Ctrl-C)."""
    env = dict(os.environ, GROUNDUP_PROJECT_DIR=str(root))
    start = time.monotonic()
    proc = subprocess.Popen(["bash", "-c", hook.command], cwd=root, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(json.dumps(payload, ensure_ascii=False),
                                          timeout=hook.timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        _kill(proc)
        try:
            stdout, stderr = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            # a process that left the group (setsid) still holds the pipes: stop reading
            proc.kill()
            stdout, stderr = "", ""
        stderr = (stderr or "") + f"\n[hook killed after its timeout of {hook.timeout:g}s]"
        code = None
    except BaseException:
        _kill(proc)               # Ctrl-C: the hook goes with the turn
        proc.wait()
        raise
    _kill(proc)                   # anything it left running in its group
    return code, (stdout or "")[:MAX_OUTPUT], (stderr or "")[:MAX_OUTPUT], time.monotonic() - start


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
