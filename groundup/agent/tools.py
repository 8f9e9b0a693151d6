"""The agent's tools: what the model can do to a workspace, and the checks around each act.

    read_file(path, offset?, limit?)              numbered lines, paged, refuses binaries
    write_file(path, content)                     create or overwrite
    edit_file(path, old_string, new_string, replace_all?)   exact replacement, unified diff
    bash(command, timeout?)                       see shell.py
    grep(pattern, path?, glob?)  glob(pattern, path?)  list_dir(path)    see search.py
    todo_write(todos)                             the model's task list, shown to the user
    diagnostics(path?)                            static problems of .py files, see diagnostics.py

Design choices:
- `Toolbox.execute` never raises for a model's mistake: a malformed call, a bad argument, a
  path outside the workspace, a denied action, a missing file -- each comes back as a
  `ToolResult` with `is_error=True` and a message that says what to do, so the model can
  correct itself. Exceptions that escape are bugs (or Ctrl-C).
- Result formats are stable and compact, because small models are fine-tuned on them:
  read_file prints `{n:>6}\\t{line}`; edit_file answers with a unified diff.
- edit_file demands that the file was read in this session and has not changed on disk
  since (size + mtime + content hash): an edit computed from a stale view silently
  destroys someone else's change. Our own writes refresh the record, so read → edit →
  edit works without re-reading.
- Writes are atomic (temp file + rename, from groundup.io), keep the file's mode, and keep
  its line endings: a CRLF file is edited and written back as CRLF, while the model only
  ever sees and writes `\\n`.
- An edit or write of a .py file ends with the problems it brought in (an unused name, an
  undefined one: diagnostics.py), as an IDE shows them; `diagnostics` lists them on request.
- Tools from elsewhere (an MCP server, the retrieval index, subagents) plug in as a
  `ToolSource`: the Toolbox offers their schemas after its own, checks the arguments against
  them and asks the permission system exactly as for a core tool, then hands the call over.
  One door for every tool, so no tool can skip the checks.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from difflib import unified_diff
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from groundup.agent import diagnostics, search, shell
from groundup.agent.permissions import ConfinementError, Permissions, confine
from groundup.chat.types import ToolCall
from groundup.io import atomic_write_bytes

READ_LIMIT_LINES = 2000
READ_MAX_LINE_CHARS = 2000
READ_MAX_CHARS = 100_000               # one page never floods the context, whatever `limit` says
DEFAULT_BASH_TIMEOUT = 120.0
MAX_BASH_TIMEOUT = 600.0
_old_umask = os.umask(0)
os.umask(_old_umask)
NEW_FILE_MODE = 0o666 & ~_old_umask    # what open() would give a new file


@dataclass
class ToolResult:
    content: str
    is_error: bool = False
    display: str | None = None      # a richer view for the terminal (e.g. the full diff)


class ToolError(Exception):
    """A failure the model should read and work around."""


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": False}


_S, _I, _B = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}

SCHEMAS: list[dict[str, Any]] = [
    {"name": "read_file",
     "description": "Read a text file. Lines are numbered (`   12\\tcode`). Large files are "
                    "paged: pass offset (first line, 1-based) and limit (number of lines).",
     "parameters": _obj({"path": {**_S, "description": "file path, relative to the workspace"},
                         "offset": {**_I, "description": "first line to show (1-based)"},
                         "limit": {**_I, "description": "how many lines to show"}}, ["path"])},
    {"name": "write_file",
     "description": "Create a file, or overwrite one, with the given content.",
     "parameters": _obj({"path": _S, "content": _S}, ["path", "content"])},
    {"name": "edit_file",
     "description": "Replace old_string with new_string in a file. old_string must match the "
                    "file exactly (whitespace included, no line numbers) and only once, unless "
                    "replace_all is true. Read the file first.",
     "parameters": _obj({"path": _S, "old_string": _S, "new_string": _S,
                         "replace_all": {**_B, "description": "replace every occurrence"}},
                        ["path", "old_string", "new_string"])},
    {"name": "bash",
     "description": "Run a shell command in the workspace (e.g. tests, git). Output is "
                    "stdout and stderr together, then the exit code; paths inside the "
                    "workspace are shown relative to it.",
     "parameters": _obj({"command": _S,
                         "timeout": {"type": "number",
                                     "description": "seconds before the command is killed "
                                                    "(default 120)"}}, ["command"])},
    {"name": "grep",
     "description": "Search file contents for a regular expression (files ignored by "
                    ".gitignore are skipped). Prints path:line:text.",
     "parameters": _obj({"pattern": _S,
                         "path": {**_S, "description": "file or directory to search (default: all)"},
                         "glob": {**_S, "description": "only files matching this glob, e.g. *.py"}},
                        ["pattern"])},
    {"name": "glob",
     "description": "List files whose path matches a glob such as **/*.py.",
     "parameters": _obj({"pattern": _S, "path": {**_S, "description": "directory to search in"}},
                        ["pattern"])},
    {"name": "list_dir",
     "description": "List a directory (subdirectories end with /).",
     "parameters": _obj({"path": _S}, ["path"])},
    {"name": "todo_write",
     "description": "Replace your task list (shown to the user). Use it for work with "
                    "several steps; mark one item in_progress at a time.",
     "parameters": _obj({"todos": {"type": "array", "items": _obj(
         {"content": _S, "status": {"type": "string",
                                    "enum": ["pending", "in_progress", "completed"]}},
         ["content", "status"])}}, ["todos"])},
    {"name": "diagnostics",
     "description": "Static problems in Python code: unused or undefined names, unused "
                    "arguments and attributes, syntax errors. Prints path:line: message.",
     "parameters": _obj({"path": {**_S, "description": "a .py file or a directory (default: all)"}},
                        [])},
]
TOOL_NAMES = [s["name"] for s in SCHEMAS]
# the tools our own small models are trained with (compact mode, see agent/prompt.py): every
# tool definition is context the model reads on each step, and each one it never needs is
# a choice it can get wrong
CORE_TOOLS = ("read_file", "edit_file", "bash", "grep", "diagnostics")
READ_ONLY = frozenset({"read_file", "grep", "glob", "list_dir", "diagnostics"})
_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list,
          "object": dict}


class ToolSource(Protocol):
    """Tools that come from outside this file (an MCP server, the retrieval index, a subagent
    runner). `schemas()` are tool definitions in the shape of SCHEMAS; `call` runs one whose
    arguments already fit its schema and passed the permission check, and raises ToolError
    (or returns an error ToolResult) for anything the model should read and work around."""

    def schemas(self) -> list[dict[str, Any]]: ...

    def is_read_only(self, name: str) -> bool: ...

    def call(self, name: str, args: dict[str, Any]) -> ToolResult: ...


def check_arguments(name: str, args: dict[str, Any],
                    schema: dict[str, Any] | None = None) -> str | None:
    """Why these arguments do not fit the tool's schema (a core tool's unless `schema`, the
    tool definition's "parameters", is given), or None when they do."""
    if schema is None:
        schema = next(s for s in SCHEMAS if s["name"] == name)["parameters"]
    if not isinstance(args, dict):
        return "arguments must be a JSON object"
    for key in schema["required"]:
        if key not in args:
            return f"missing required argument {key!r}"
    for key, value in args.items():
        if key not in schema["properties"]:
            return (f"unknown argument {key!r}; {name} takes "
                    + ", ".join(schema["properties"]))
        want = schema["properties"][key].get("type")
        if want not in _TYPES:
            continue                      # a schema we do not check here (object, union...)
        if want == "integer" and isinstance(value, float) and value.is_integer():
            continue                      # 10.0 from a JSON encoder is still line 10
        if value is not None and (not isinstance(value, _TYPES[want])
                                  or (want in ("integer", "number") and isinstance(value, bool))):
            return f"argument {key!r} must be of type {want}"
    return None


def _split_endings(data: bytes) -> tuple[str, str]:
    """Decode a text file to `\\n`-only text, and say which newline it used."""
    text = data.decode("utf-8")
    if "\r\n" in text:
        return text.replace("\r\n", "\n"), "\r\n"
    return text, "\n"


def _fingerprint(data: bytes, st: os.stat_result) -> tuple[int, int, str]:
    return st.st_size, st.st_mtime_ns, hashlib.sha256(data).hexdigest()


class Toolbox:
    """The real tools, confined to `root` (and `extra_dirs`), guarded by `permissions`
    (None: everything that stays inside the workspace is allowed, as in yolo mode)."""

    def __init__(self, root: Path, extra_dirs=(), permissions: Permissions | None = None,
                 on_todos: Callable[[list[dict[str, str]]], None] | None = None,
                 tools: Sequence[str] | None = None, sources: Sequence[ToolSource] = ()):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"workspace {root} is not a directory")
        self.extra_dirs = tuple(Path(d).resolve() for d in extra_dirs)
        self.permissions = permissions
        self.on_todos = on_todos
        unknown = [t for t in (tools or ()) if t not in TOOL_NAMES]
        if unknown:
            raise ValueError(f"unknown tool(s) {', '.join(unknown)}; the tools are {', '.join(TOOL_NAMES)}")
        self.names = [n for n in TOOL_NAMES if tools is None or n in tools]   # offered, in order
        self.sources = list(sources)
        self.todos: list[dict[str, str]] = []
        self.read_state: dict[Path, tuple[int, int, str]] = {}
        self.deadline: float | None = None   # time.monotonic() by which a run must end
        self.sandbox: Any = None             # a sandbox.Sandbox: bash runs inside it
        self._lock = threading.Lock()

    def schemas(self) -> list[dict[str, Any]]:
        own = [dict(s) for s in SCHEMAS if s["name"] in self.names]
        return own + [dict(s) for src in self.sources for s in src.schemas()]

    def source_of(self, name: str) -> tuple[ToolSource, dict[str, Any]] | None:
        """The ToolSource that offers tool `name`, and its definition (None: not offered)."""
        for src in self.sources:
            for s in src.schemas():
                if s["name"] == name:
                    return src, s
        return None

    def is_read_only(self, name: str) -> bool:
        """Can this call run beside others in one turn (no writes, no commands)?"""
        if name in self.names:
            return name in READ_ONLY
        found = self.source_of(name)
        return found is not None and found[0].is_read_only(name)

    # ------------------------------------------------------------ dispatch

    def execute(self, call: ToolCall) -> ToolResult:
        if call.error:
            return ToolResult(f"error: your tool call could not be parsed: {call.error}. "
                              "Call a tool with valid JSON arguments.", True)
        if call.name not in self.names:
            found = self.source_of(call.name)
            if found is None:
                return ToolResult(f"error: unknown tool {call.name!r}; the tools are "
                                  + ", ".join(s["name"] for s in self.schemas()), True)
            return self._execute_source(call, *found)
        problem = check_arguments(call.name, call.arguments)
        if problem:
            return ToolResult(f"error: {call.name}: {problem}", True)
        args = {k: v for k, v in call.arguments.items() if v is not None}
        try:
            target, resolved = self._target(call.name, args)
            if self.permissions is not None:
                decision = self.permissions.decide(call.name, args, target,
                                                   self.describe(call.name, args))
                if not decision.allowed:
                    return ToolResult(f"permission denied: {decision.reason}", True)
            return getattr(self, "_" + call.name)(args, resolved)
        except (ToolError, ConfinementError, ValueError) as e:
            return ToolResult(f"error: {e}", True)
        except UnicodeDecodeError:
            return ToolResult(f"error: {args.get('path')} is not UTF-8 text", True)
        except OSError as e:
            # the file system said no (missing file, permission, is a directory...): the
            # model can adapt, so this is a result, not a crash
            return ToolResult(f"error: {e.strerror or e}: {args.get('path', '')}".rstrip(": "), True)

    def _execute_source(self, call: ToolCall, src: ToolSource,
                        schema: dict[str, Any]) -> ToolResult:
        problem = check_arguments(call.name, call.arguments, schema.get("parameters") or {})
        if problem:
            return ToolResult(f"error: {call.name}: {problem}", True)
        args = {k: v for k, v in call.arguments.items() if v is not None}
        if self.permissions is not None:
            decision = self.permissions.decide(call.name, args, None,
                                               self.describe(call.name, args),
                                               read_only=src.is_read_only(call.name))
            if not decision.allowed:
                return ToolResult(f"permission denied: {decision.reason}", True)
        try:
            return src.call(call.name, args)
        except (ToolError, ConfinementError, ValueError) as e:
            return ToolResult(f"error: {e}", True)

    def _target(self, name: str, args: dict[str, Any]) -> tuple[str | None, Path | None]:
        """The permission target (command, or root-relative path) and the resolved path."""
        if name == "bash":
            return args["command"], None
        if name == "todo_write":
            return None, None
        path = args.get("path") or "."
        resolved = confine(self.root, path, self.extra_dirs)
        return self.rel(resolved), resolved

    def rel(self, p: Path) -> str:
        try:
            return p.relative_to(self.root).as_posix() or "."
        except ValueError:
            return p.as_posix()           # inside an extra directory

    def visible(self, rel: str) -> bool:
        """May a search show this file? Not when a deny or secret rule forbids reading it."""
        return self.permissions is None or self.permissions.readable(rel)

    @staticmethod
    def describe(name: str, args: dict[str, Any]) -> str:
        """One line a user can approve or refuse."""
        if name == "bash":
            return f"run: {args['command']}"
        if name == "edit_file":
            return f"edit {args['path']}"
        if name == "write_file":
            return f"write {args['path']} ({len(args['content'])} characters)"
        return f"{name} " + " ".join(f"{k}={v!r}" for k, v in args.items())

    # ------------------------------------------------------------ files

    def _load(self, path: Path) -> tuple[bytes, str, str]:
        if path.is_dir():
            raise ToolError(f"{self.rel(path)} is a directory; use list_dir")
        if not path.exists():
            raise ToolError(f"{self.rel(path)} does not exist")
        data = path.read_bytes()
        if b"\x00" in data[:8192]:
            raise ToolError(f"{self.rel(path)} is a binary file; it cannot be shown as text")
        try:
            text, newline = _split_endings(data)
        except UnicodeDecodeError:
            raise ToolError(f"{self.rel(path)} is not UTF-8 text (binary?)") from None
        return data, text, newline

    def _remember(self, path: Path, data: bytes) -> None:
        with self._lock:
            self.read_state[path] = _fingerprint(data, path.stat())

    def _read_file(self, args: dict[str, Any], path: Path) -> ToolResult:
        data, text, _ = self._load(path)
        self._remember(path, data)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()                   # a final newline does not start another line
        if not lines:
            return ToolResult("(empty file)")
        offset = max(1, int(args.get("offset", 1)))
        limit = max(1, int(args.get("limit", READ_LIMIT_LINES)))
        if offset > len(lines):
            raise ToolError(f"offset {offset} is past the end of the file ({len(lines)} lines)")
        shown = lines[offset - 1: offset - 1 + limit]
        out, size = [], 0
        for n, line in enumerate(shown, offset):
            if len(line) > READ_MAX_LINE_CHARS:
                line = line[:READ_MAX_LINE_CHARS] + " [line truncated]"
            size += len(line) + 8
            if size > READ_MAX_CHARS and out:
                break
            out.append(f"{n:>6}\t{line}")
        last = offset + len(out) - 1
        if last < len(lines):
            out.append(f"[showing lines {offset}-{last} of {len(lines)}; read more with "
                       f"offset={last + 1}]")
        return ToolResult("\n".join(out))

    def _write(self, path: Path, text: str, newline: str) -> bytes:
        data = text.replace("\n", newline).encode("utf-8") if newline != "\n" else text.encode("utf-8")
        mode = path.stat().st_mode & 0o7777 if path.exists() else NEW_FILE_MODE
        atomic_write_bytes(path, data, mode=mode)
        self._remember(path, data)
        return data

    def _write_file(self, args: dict[str, Any], path: Path) -> ToolResult:
        if path.is_dir():
            raise ToolError(f"{self.rel(path)} is a directory")
        newline, old = "\n", None
        if path.exists():
            try:
                _, old, newline = self._load(path)
            except ToolError:
                old = None                # overwriting a binary file is allowed
        content = args["content"].replace("\r\n", "\n")
        self._write(path, content, newline)
        lint = self._lint(path, old or "", content)
        if old is None:
            return ToolResult(f"created {self.rel(path)} ({len(content.splitlines())} lines)" + lint)
        diff = self._diff(path, old, content)
        return ToolResult((f"wrote {self.rel(path)}\n{diff}" if diff else
                           f"wrote {self.rel(path)} (unchanged)") + lint, display=diff + lint)

    def _edit_file(self, args: dict[str, Any], path: Path) -> ToolResult:
        old_s, new_s = args["old_string"], args["new_string"]
        if not path.exists():
            raise ToolError(f"{self.rel(path)} does not exist; use write_file to create it")
        seen = self.read_state.get(path)
        if seen is None:
            raise ToolError(f"read {self.rel(path)} with read_file before editing it")
        data, text, newline = self._load(path)
        if _fingerprint(data, path.stat()) != seen:
            raise ToolError(f"{self.rel(path)} changed on disk since you read it; read it "
                            "again before editing")
        old_s, new_s = old_s.replace("\r\n", "\n"), new_s.replace("\r\n", "\n")
        if old_s == new_s:
            raise ToolError("old_string and new_string are the same; nothing to change")
        if not old_s:
            raise ToolError("old_string is empty; to write a whole file use write_file")
        count = text.count(old_s)
        if count == 0:
            raise ToolError(f"old_string was not found in {self.rel(path)}; it must match "
                            "exactly, including whitespace and indentation (read the file again)")
        if count > 1 and not args.get("replace_all"):
            raise ToolError(f"old_string matches {count} times in {self.rel(path)}; add "
                            "surrounding lines to make it unique, or set replace_all")
        new_text = text.replace(old_s, new_s) if args.get("replace_all") else text.replace(old_s, new_s, 1)
        self._write(path, new_text, newline)
        diff = self._diff(path, text, new_text)
        lint = self._lint(path, text, new_text)
        return ToolResult(f"edited {self.rel(path)}\n{diff}{lint}", display=diff + lint)

    def _lint(self, path: Path, before: str, after: str) -> str:
        """The problems an edit of a .py file brought in, as a last line (nothing for other files)."""
        return "\n" + diagnostics.after_edit(self.rel(path), before, after) if path.suffix == ".py" else ""

    def _diff(self, path: Path, before: str, after: str) -> str:
        name = self.rel(path)
        return "".join(unified_diff(before.splitlines(keepends=True),
                                    after.splitlines(keepends=True),
                                    f"a/{name}", f"b/{name}", n=2)).rstrip("\n")

    # ------------------------------------------------------------ shell, search, todos

    def _bash(self, args: dict[str, Any], _: Path | None) -> ToolResult:
        timeout = float(args.get("timeout", DEFAULT_BASH_TIMEOUT))
        if not 0 < timeout <= MAX_BASH_TIMEOUT:
            raise ToolError(f"timeout must be between 0 and {MAX_BASH_TIMEOUT:g} seconds")
        if self.deadline is not None:
            # a command may not outlast the run's wall-time limit
            timeout = max(1.0, min(timeout, self.deadline - time.monotonic()))
        r = shell.run_command(args["command"], self.root, timeout,
                              wrap=self.sandbox.wrap if self.sandbox is not None else None)
        r.output = shell.relative_paths(r.output, self.root)
        return ToolResult(shell.format_result(r, timeout), is_error=r.timed_out)

    def _grep(self, args: dict[str, Any], path: Path) -> ToolResult:
        if not path.exists():
            raise ToolError(f"{self.rel(path)} does not exist")
        return ToolResult(search.grep(self.root, path, args["pattern"], args.get("glob"),
                                      self.visible))

    def _glob(self, args: dict[str, Any], path: Path) -> ToolResult:
        if not path.is_dir():
            raise ToolError(f"{self.rel(path)} is not a directory")
        pattern = args["pattern"]
        if pattern.startswith("/") or ".." in pattern.split("/"):
            raise ToolError("the pattern must be relative to the workspace, without ..")
        return ToolResult(search.glob_files(self.root, path, pattern, self.visible))

    def _list_dir(self, args: dict[str, Any], path: Path) -> ToolResult:
        if not path.is_dir():
            raise ToolError(f"{self.rel(path)} is not a directory")
        return ToolResult(search.list_dir(self.root, path, self.visible))

    def _diagnostics(self, args: dict[str, Any], path: Path) -> ToolResult:
        if path.is_dir():
            rels = [r for r in search.walk_files(self.root, path) if r.endswith(".py") and self.visible(r)]
            files = [(r, (self.root / r).read_text(encoding="utf-8", errors="replace")) for r in sorted(rels)]
            return ToolResult(diagnostics.report_files(files))
        if path.suffix != ".py":
            raise ToolError(f"{self.rel(path)} is not a Python file; diagnostics checks .py files")
        _, text, _ = self._load(path)
        return ToolResult(diagnostics.report(self.rel(path), text))

    def _todo_write(self, args: dict[str, Any], _: Path | None) -> ToolResult:
        todos = []
        for t in args["todos"]:
            if not isinstance(t, dict) or not isinstance(t.get("content"), str):
                raise ToolError("each todo is {\"content\": str, \"status\": "
                                "pending|in_progress|completed}")
            status = t.get("status", "pending")
            if status not in ("pending", "in_progress", "completed"):
                raise ToolError(f"unknown todo status {status!r}")
            todos.append({"content": t["content"], "status": status})
        self.todos = todos
        if self.on_todos is not None:
            self.on_todos(todos)
        return ToolResult(render_todos(todos))


def render_todos(todos: list[dict[str, str]]) -> str:
    if not todos:
        return "(todo list cleared)"
    mark = {"pending": "[ ]", "in_progress": "[~]", "completed": "[x]"}
    return "\n".join(f"{mark[t['status']]} {t['content']}" for t in todos)
