"""Settings: four layers, the closest to the moment wins.

    command line                       (highest)
    .groundup/settings.local.json      this checkout, not committed (your key, your model)
    .groundup/settings.json            the project, committed (the team's rules)
    ~/.config/groundup/settings.json   the user ($XDG_CONFIG_HOME respected)   (lowest)

A file looks like:

    {"model": "openai:gpt-4o-mini", "base_url": "http://localhost:8000/v1",
     "permissions": {"mode": "accept-edits",
                     "allow": ["bash(git status:*)", "bash(make test)"],
                     "deny": ["read(.env)", "bash(git push:*)"]},
     "max_steps": 50, "max_seconds": 1800, "max_tokens": 2000000,
     "hooks": {"PostToolUse": [{"matcher": "edit_file", "command": "black -q ."}]},
     "sandbox": true}

Design choices:
- Scalars (model, mode, limits) are overridden by a higher layer; permission rule lists are
  *merged* across layers, so a user's personal allow list cannot drop the project's deny
  rules -- and deny wins over allow anyway (permissions.py).
- Hooks (hooks.py) are merged across layers too; those of the committed project file are
  marked, because they run only once the user has approved them.
- MCP servers ("mcpServers", the shape of .mcp.json; mcp/config.py) come from every layer
  and from the project's .mcp.json (just above the user's file); a server named again in
  a higher layer replaces the lower entry whole.
- A malformed file or value is a UserError naming the file, before anything runs; unknown
  keys only warn, so a newer settings file does not break an older groundup.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundup.agent.cost import Price, parse_prices
from groundup.agent.hooks import Hook, parse_hooks
from groundup.mcp.config import ServerConfig, load_servers, parse_servers, read_json
from groundup.agent.permissions import MODES, Rule
from groundup.agent.prompt import config_dir
from groundup.errors import UserError

SCALARS = {"model": str, "base_url": str, "max_steps": int, "max_seconds": (int, float),
           "max_tokens": int, "compact_prompt": bool, "context_window": int}


@dataclass
class Settings:
    model: str | None = None
    base_url: str | None = None
    permission_mode: str = "default"
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    add_dirs: list[str] = field(default_factory=list)
    max_steps: int | None = 100
    max_seconds: float | None = None
    max_tokens: int | None = None
    compact_prompt: bool | None = None
    context_window: int | None = None      # tokens; None: known from the model's name, or not
    hooks: list[Hook] = field(default_factory=list)
    mcp_servers: dict[str, ServerConfig] = field(default_factory=dict)   # by name; higher layers replace
    mcp_trust_read_only: list[str] = field(default_factory=list)   # servers whose readOnlyHint counts
    prices: dict[str, Price] = field(default_factory=dict)   # by model spec (cost.py)
    sandbox: bool = False                  # bash under bubblewrap (sandbox.py)
    sandbox_network: bool = False
    sources: list[str] = field(default_factory=list)   # the files that were read, low → high


def setting_files(root: Path) -> list[Path]:
    """Lowest precedence first."""
    return [config_dir() / "settings.json", root / ".groundup" / "settings.json",
            root / ".groundup" / "settings.local.json"]


def _apply(s: Settings, data: dict[str, Any], where: str, project: bool = False) -> None:
    for key, value in data.items():
        if key in SCALARS:
            if value is not None and (not isinstance(value, SCALARS[key])
                                      or (SCALARS[key] is int and isinstance(value, bool))):
                raise UserError(f"{where}: {key!r} has the wrong type ({value!r})")
            if key.startswith("max_") and value is not None and not 0 < value < float("inf"):
                raise UserError(f"{where}: {key!r} must be a positive number, got {value!r}")
            setattr(s, key, value)
        elif key == "permissions":
            if not isinstance(value, dict):
                raise UserError(f"{where}: 'permissions' must be an object "
                                '{"mode": ..., "allow": [...], "deny": [...]}')
            mode = value.get("mode", value.get("defaultMode"))
            if mode is not None:
                if mode not in MODES:
                    raise UserError(f"{where}: unknown permission mode {mode!r} "
                                    f"(use one of {', '.join(MODES)})")
                s.permission_mode = mode
            for kind in ("allow", "deny"):
                rules = value.get(kind, [])
                if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
                    raise UserError(f"{where}: permissions.{kind} must be a list of strings")
                for r in rules:
                    try:
                        Rule.parse(r)
                    except ValueError as e:
                        raise UserError(f"{where}: {e}") from None
                getattr(s, kind).extend(rules)
        elif key == "hooks":
            s.hooks.extend(parse_hooks(value, where, project))
        elif key == "mcpServers":
            s.mcp_servers.update(parse_servers(value, where))
        elif key == "mcp_trust_read_only":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UserError(f"{where}: 'mcp_trust_read_only' must be a list of MCP server names")
            s.mcp_trust_read_only.extend(value)
        elif key == "prices":
            s.prices.update(parse_prices(value, where))
        elif key == "sandbox":
            if isinstance(value, bool):
                s.sandbox = value
            elif isinstance(value, dict) and all(isinstance(value.get(k, False), bool)
                                                 for k in ("enabled", "network")):
                s.sandbox = value.get("enabled", True)
                s.sandbox_network = value.get("network", False)
            else:
                raise UserError(f"{where}: 'sandbox' must be true, false or "
                                '{"enabled": true, "network": false}')
        elif key == "add_dirs":
            if not isinstance(value, list):
                raise UserError(f"{where}: 'add_dirs' must be a list of directories")
            s.add_dirs.extend(str(v) for v in value)
        else:
            print(f"groundup: warning: {where}: unknown setting {key!r} ignored", file=sys.stderr)


def load_settings(root: Path, cli: dict[str, Any] | None = None) -> Settings:
    """Merge the three files and then the command line (`cli`: keys as in a settings file,
    None values meaning "not given")."""
    s = Settings()
    for path in setting_files(Path(root)):
        if path == setting_files(Path(root))[1]:
            # the project's .mcp.json (the file Claude Code and Cursor read) sits between
            # the user's settings and the project's, with the same precedence as the latter
            s.mcp_servers.update(load_servers([Path(root) / ".mcp.json"]))
        if not path.is_file():
            continue
        data = read_json(path)
        _apply(s, data, str(path), project=path == setting_files(Path(root))[1])
        s.sources.append(str(path))
    if cli:
        _apply(s, {k: v for k, v in cli.items() if v is not None and v != []}, "command line")
    return s
