"""Which MCP servers to connect to: `.mcp.json` and the `mcpServers` key of settings files.

The shape is the one Claude Code and Cursor read, so a user's existing file works as is:

    {"mcpServers": {
       "files":  {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."],
                  "env": {"DEBUG": "0"}},
       "search": {"type": "http", "url": "https://example.com/mcp",
                  "headers": {"Authorization": "Bearer ${SEARCH_TOKEN}"}}}}

`${VAR}` and `${VAR:-default}` are expanded from the environment in command, args, env, url
and headers, so secrets stay out of committed files. groundup adds one optional key per
server: "timeout" (seconds a tool call may take, default 60).

Design choices:
- A mistake in a server entry is a UserError naming the file and the server, raised before
  anything starts -- not a failed connection later that hides the typo.
- Names become part of tool names (`mcp__NAME__TOOL`), so they are limited to letters,
  digits, `_` and `-`.
- The deprecated HTTP+SSE transport (type "sse", 2024-11-05) is refused with a clear
  message rather than half-supported.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundup.errors import UserError
from groundup.io import atomic_write_text

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,48}\Z")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DEFAULT_TOOL_TIMEOUT = 60.0


@dataclass
class ServerConfig:
    name: str
    transport: str                        # "stdio" | "http"
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TOOL_TIMEOUT
    source: str = ""                      # the file it came from

    def describe(self) -> str:
        if self.transport == "http":
            return f"http {self.url}"
        return "stdio " + " ".join([self.command or "", *self.args])


def expand(value: str, where: str, strict: bool = True) -> str:
    def sub(m: re.Match[str]) -> str:
        if not strict:
            return m.group(0)             # checking a file's shape, not using it yet
        if m.group(1) in os.environ:
            return os.environ[m.group(1)]
        if m.group(2) is not None:
            return m.group(2)
        raise UserError(f"{where}: environment variable {m.group(1)} is not set (write "
                        f"${{{m.group(1)}:-default}} for a default, or export it)")
    return _VAR.sub(sub, value)


def _strings(value: Any, kind: str, where: str, strict: bool) -> Any:
    if kind == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{where} must be a list of strings")
        return [expand(v, where, strict) for v in value]
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise UserError(f"{where} must be an object of strings")
    return {k: expand(v, where, strict) for k, v in value.items()}


def parse_server(name: str, entry: Any, source: str, strict: bool = True) -> ServerConfig:
    """One entry; `strict=False` checks its shape without requiring its ${VARS} to be set."""
    where = f"{source}: MCP server {name!r}"
    if not NAME_RE.match(name):
        raise UserError(f"{where}: a server name may use letters, digits, _ and - only "
                        "(it becomes part of the tool names mcp__NAME__TOOL)")
    if not isinstance(entry, dict):
        raise UserError(f"{where} must be an object with \"command\" (stdio) or \"url\" (http)")
    kind = entry.get("type") or entry.get("transport") or ("http" if "url" in entry else "stdio")
    timeout = entry.get("timeout", DEFAULT_TOOL_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise UserError(f"{where}: \"timeout\" must be a positive number of seconds")
    if kind == "stdio":
        if not isinstance(entry.get("command"), str) or not entry["command"].strip():
            raise UserError(f"{where}: a stdio server needs \"command\" (e.g. \"npx\")")
        return ServerConfig(name, "stdio", expand(entry["command"], where, strict),
                            _strings(entry.get("args", []), "list", f"{where} args", strict),
                            _strings(entry.get("env", {}), "dict", f"{where} env", strict),
                            timeout=float(timeout), source=source)
    if kind in ("http", "streamable-http", "streamableHttp"):
        url = entry.get("url")
        if not isinstance(url, str) or not re.match(r"https?://", url):
            raise UserError(f"{where}: an http server needs \"url\" starting with http:// or https://")
        return ServerConfig(name, "http", url=expand(url, where, strict),
                            headers=_strings(entry.get("headers", {}), "dict", f"{where} headers",
                                             strict),
                            timeout=float(timeout), source=source)
    if kind == "sse":
        raise UserError(f"{where}: type \"sse\" is the HTTP+SSE transport of 2024-11-05, "
                        "deprecated since 2025-03-26 and not supported by groundup; point "
                        "\"url\" at the server's Streamable HTTP endpoint with \"type\": \"http\"")
    raise UserError(f"{where}: unknown type {kind!r} (use \"stdio\" or \"http\")")


def parse_servers(data: Any, source: str) -> dict[str, ServerConfig]:
    if not isinstance(data, dict):
        raise UserError(f"{source}: \"mcpServers\" must be an object of NAME: {{...}}")
    return {name: parse_server(name, entry, source) for name, entry in data.items()}


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file ({} when it does not exist)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); fix or remove it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object")
    return data


def load_servers(files: list[Path]) -> dict[str, ServerConfig]:
    """Servers from these files, lowest precedence first: a later file's entry of the same
    name replaces an earlier one."""
    servers: dict[str, ServerConfig] = {}
    for path in files:
        data = read_json(path)
        if "mcpServers" in data:
            servers.update(parse_servers(data["mcpServers"], str(path)))
    return servers


def write_server(path: Path, name: str, entry: dict[str, Any] | None) -> None:
    """Add (or, with entry None, remove) one server in a JSON file, keeping its other keys;
    written atomically so a crash never leaves a torn settings file."""
    data = read_json(path)
    servers = data.setdefault("mcpServers", {})
    if not isinstance(servers, dict):
        raise UserError(f"{path}: \"mcpServers\" must be an object")
    if entry is None:
        servers.pop(name, None)
    else:
        parse_server(name, entry, str(path), strict=False)   # refuse to write what we cannot read
        servers[name] = entry
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
