"""Permissions and confinement: what the agent may touch, and who decides.

Two independent guards stand between a tool call and the machine:

1. **Confinement** (`confine`): every path a tool receives is resolved -- `..` collapsed,
   symlinks followed -- and must land inside the workspace root or an explicitly added
   directory. Resolving *before* checking is the point: `link -> /etc` passes a naive
   prefix check on the unresolved string but not on the resolved one. Nothing here can be
   switched off, not even in `yolo` mode.
2. **Permission decisions** (`Permissions.decide`): a mode plus allow/deny rules, as in Claude
   Code:
     - `plan`          read-only tools only; writes and bash are denied,
     - `default`       reads run; writes and bash ask the user,
     - `accept-edits`  reads and file edits run; bash asks,
     - `yolo`          everything runs (still confined).
   Rules name a tool family and an optional specifier: `bash(git status:*)` (a command
   prefix), `bash(make test)` (an exact command), `edit(src/**)` (a path glob for
   write_file/edit_file), `read(.env)` (a path glob for read_file/grep/glob/list_dir), or a
   bare family/tool name (`bash`, `edit`, `read_file`), or an MCP server's tools:
   `mcp__files__read` (one tool), `mcp__files__*` or `mcp__files` (all of them). Deny beats allow beats the mode, so a
   deny rule is a hard wall that no approval or mode opens.

Secrets have default rules of their own (`SECRET_RULES`: `.env*`, `*.pem`, SSH private keys,
`.git/config`, which can hold a token in a remote's URL): reading them is refused in every
mode, unless an allow rule names the file (`read(.env.example)`) -- the user can override a
default, but not by accident. The sandbox (sandbox.py) hides the same files from commands.

Asking is a callback (`approver`) so the terminal UI can show a prompt, while headless runs
(no callback) refuse instead of hanging, and say how to allow the action. "Always" answers
become session allow rules.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from groundup.gitignore import glob_to_regex, path_matches  # noqa: F401 (re-exported)

MODES = ("default", "accept-edits", "plan", "yolo")

READ_TOOLS = frozenset({"read_file", "grep", "glob", "list_dir", "todo_write", "diagnostics"})
EDIT_TOOLS = frozenset({"write_file", "edit_file"})
READ_FAMILY = frozenset({"read_file", "grep", "glob", "list_dir"})
# a rule's family name -> the tools it covers
FAMILIES = {"read": {"read_file", "grep", "glob", "list_dir", "diagnostics"}, "edit": set(EDIT_TOOLS),
            "write": set(EDIT_TOOLS), "bash": {"bash"}}


class ConfinementError(Exception):
    """A path leaves the workspace; its message is shown to the model as a tool error."""


def confine(root: Path, path: str | os.PathLike, extra_dirs: Iterable[Path] = ()) -> Path:
    """Resolve `path` (relative to `root`, symlinks followed) and insist it stays inside."""
    raw = str(path)
    if not raw.strip():
        raise ConfinementError("empty path")
    if "\x00" in raw:
        raise ConfinementError("path contains a NUL byte")
    p = Path(os.path.expanduser(raw)) if raw.startswith("~") else Path(raw)
    # resolve() follows every symlink that exists and collapses `..` after it, so a link
    # pointing outside is caught even when it sits in the middle of the path
    resolved = (p if p.is_absolute() else root / p).resolve()
    for allowed in (root, *extra_dirs):
        allowed = Path(allowed).resolve()
        if resolved == allowed or resolved.is_relative_to(allowed):
            return resolved
    raise ConfinementError(f"{raw} is outside the workspace ({root}); only paths inside it "
                           "can be used (symlinks are followed before checking)")


@dataclass(frozen=True)
class Rule:
    family: str          # "bash" | "edit" | "read" | "write" | an exact tool name
    spec: str | None     # None: every call of the family

    @classmethod
    def parse(cls, text: str) -> "Rule":
        mcp = re.fullmatch(r"\s*(mcp__[A-Za-z0-9_-]+(?:__[A-Za-z0-9_.-]*\*?)?)\s*", text)
        if mcp:                 # MCP tools keep their case: mcp__NAME, mcp__NAME__TOOL, mcp__NAME__*
            return cls(mcp.group(1), None)
        m = re.fullmatch(r"\s*([A-Za-z_]+)\s*(?:\((.*)\))?\s*", text)
        if not m:
            raise ValueError(f"bad permission rule {text!r}: write e.g. bash(git status:*), "
                             "edit(src/**), read(.env) or a bare tool name")
        return cls(m.group(1).lower(), m.group(2))

    def __str__(self) -> str:
        return self.family if self.spec is None else f"{self.family}({self.spec})"

    def covers(self, tool: str) -> bool:
        if self.family.startswith("mcp__"):
            if self.family.endswith("*"):
                return tool.startswith(self.family[:-1])
            # a bare server (mcp__files) covers all of its tools, as in Claude Code
            return tool == self.family or ("__" not in self.family[5:]
                                           and tool.startswith(self.family + "__"))
        return tool == self.family or tool in FAMILIES.get(self.family, ())

    def matches(self, tool: str, target: str | None) -> bool:
        if not self.covers(tool):
            return False
        if self.spec is None or self.spec in ("*", "**"):
            return True
        if target is None:
            return False
        if tool == "bash":
            cmd = " ".join(target.split())
            if self.spec.endswith(":*"):
                prefix = self.spec[:-2].strip()
                return cmd == prefix or cmd.startswith(prefix + " ")
            return cmd == " ".join(self.spec.split())
        return path_matches(self.spec, target)


SECRET_RULES = tuple(Rule.parse(f"read({p})") for p in (
    ".env", ".env.*", "*.pem", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".git/config"))


@dataclass
class Decision:
    allowed: bool
    reason: str = ""


# approver(tool, arguments, summary) -> "yes" | "no" | "always"
Approver = Callable[[str, dict[str, Any], str], str]


@dataclass
class Permissions:
    mode: str = "default"
    allow: list[Rule] = field(default_factory=list)
    deny: list[Rule] = field(default_factory=list)
    approver: Approver | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown permission mode {self.mode!r}: use one of {', '.join(MODES)}")
        self.allow = [r if isinstance(r, Rule) else Rule.parse(r) for r in self.allow]
        self.deny = [r if isinstance(r, Rule) else Rule.parse(r) for r in self.deny]

    def decide(self, tool: str, arguments: dict[str, Any], target: str | None,
               summary: str, read_only: bool = False) -> Decision:
        """May this call run? `target` is the command for bash, else the path relative to
        the root (posix) or None; `summary` is what the user is shown when asked;
        `read_only` marks a tool from a ToolSource (tools.py) that changes nothing, which
        runs as freely as the core read tools."""
        for rule in self.deny:
            if rule.matches(tool, target):
                return Decision(False, f"denied by the rule {rule} in the settings")
        secret = self.secret_rule(tool, target)
        if secret is not None:
            return Decision(False, f"{target} may hold secrets (the default rule {secret}); "
                                   f"the user can allow it with the allow rule read({target})")
        if tool in READ_TOOLS or read_only:
            return Decision(True)
        if self.mode == "plan":
            return Decision(False, "plan mode is read-only: describe the change instead of "
                                   "making it, or ask the user to leave plan mode")
        if self.mode == "yolo":
            return Decision(True)
        if any(rule.matches(tool, target) for rule in self.allow):
            return Decision(True)
        if self.mode == "accept-edits" and tool in EDIT_TOOLS:
            return Decision(True)
        if self.approver is None:
            return Decision(False, f"{tool} needs the user's approval in {self.mode} mode, and "
                            "there is no terminal to ask on (headless): the action was not run. "
                            "The user can allow it with --permission-mode accept-edits/yolo or "
                            "an allow rule such as " + _suggest_rule(tool, target))
        answer = self.approver(tool, arguments, summary)
        if answer == "always":
            self.allow.append(Rule.parse(_suggest_rule(tool, target)))
            return Decision(True)
        if answer == "yes":
            return Decision(True)
        return Decision(False, "the user declined this action; ask what they want instead, or "
                               "try a different approach")


    def secret_rule(self, tool: str, target: str | None) -> Rule | None:
        """The default secret rule that keeps this read away, unless an allow rule names it."""
        if tool not in READ_FAMILY or target is None:
            return None
        rule = next((r for r in SECRET_RULES if r.matches(tool, target)), None)
        if rule is None or any(r.spec is not None and r.matches(tool, target) for r in self.allow):
            return None
        return rule

    def readable(self, rel: str) -> bool:
        """May a search show this file (no deny rule, no unallowed secret)?"""
        return not (any(r.matches("read_file", rel) for r in self.deny)
                    or self.secret_rule("read_file", rel) is not None)


def _suggest_rule(tool: str, target: str | None) -> str:
    if tool == "bash" and target:
        return f"bash({' '.join(target.split())})"
    if tool in EDIT_TOOLS:
        return "edit"
    return tool
