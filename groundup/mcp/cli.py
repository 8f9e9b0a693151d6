"""`groundup mcp ...`: serve the agent's tools over MCP, and manage the servers the agent uses.

    groundup mcp serve [--transport stdio|http] [--host 127.0.0.1] [--port 8765] [--root DIR]
                       [--allow-writes] [--token T]
    groundup mcp add NAME -- COMMAND [ARGS...]        a stdio server   [-e KEY=VALUE] [--scope]
    groundup mcp add --transport http NAME URL        an HTTP server   [--header 'K: V']
    groundup mcp list                                 each server: status, tool count
    groundup mcp remove NAME [--scope local|project|user]
    groundup mcp tools NAME                           its tools and their input schemas
    groundup mcp call NAME TOOL '{"arg": 1}'          call one tool, print the result

Scopes, as in Claude Code: `local` (default) writes .groundup/settings.local.json (this
checkout, not committed), `project` writes .mcp.json (committed, shared with the team and
read by other MCP clients), `user` writes ~/.config/groundup/settings.json (every project).

This file only wires layers together: the protocol is in groundup/mcp, the tools and the
permission rules in groundup/agent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from groundup.argtypes import int_range, positive_float
from groundup.errors import UserError

SCOPES = ("local", "project", "user")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("MCP (Model Context Protocol): serve groundup's tools to MCP clients, "
                          "and manage the MCP servers whose tools the agent uses.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("serve", help="serve the agent's tools and the workspace's files over MCP",
                       description="Serve read_file, grep, glob and list_dir (confined to the "
                                   "root, as in the agent), search_code when the workspace has "
                                   "an index (`groundup index`), and the workspace's files as "
                                   "resources, to any MCP client. Speaks 2026-07-28 and 2025-11-25.")
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                   help="stdio (the client starts this command) or Streamable HTTP (default: stdio)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind for http (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int_range(0, 65535), default=8765,
                   help="port for http (default 8765; 0: any free)")
    p.add_argument("--root", default=".", help="the workspace served; nothing outside it is reachable")
    p.add_argument("--allow-writes", action="store_true",
                   help="also serve edit_file, write_file and bash, under the workspace's "
                        "permission rules (settings files; nobody can approve, so 'ask' refuses)")
    p.add_argument("--permission-mode", choices=("default", "accept-edits", "plan", "yolo"),
                   help="permission mode for --allow-writes (default: the settings' mode)")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' over http "
                                   "(default: $GROUNDUP_MCP_TOKEN, if set)")

    p = sub.add_parser("add", help="add a server to the agent's configuration",
                       description="groundup mcp add NAME -- COMMAND [ARGS...]   (stdio)\n"
                                   "groundup mcp add --transport http NAME URL   (http)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    p.add_argument("--scope", choices=SCOPES, default="local",
                   help="local: .groundup/settings.local.json (default); project: .mcp.json; "
                        "user: ~/.config/groundup/settings.json")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment variable for a stdio server (repeatable)")
    p.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="HTTP header for an http server, e.g. 'Authorization: Bearer ${TOKEN}'")
    p.add_argument("--timeout", type=positive_float, help="seconds a tool call may take (default 60)")
    p.add_argument("name")
    p.add_argument("target", nargs="*",
                   help="-- COMMAND [ARGS...] for stdio, or the URL for http")

    p = sub.add_parser("list", help="the configured servers, their status and tool counts")
    p.add_argument("--no-connect", action="store_true", help="show the configuration only")
    p = sub.add_parser("remove", help="remove a server from the configuration")
    p.add_argument("name")
    p.add_argument("--scope", choices=SCOPES, help="where to remove it from (default: wherever it is)")
    p = sub.add_parser("tools", help="a server's tools and their input schemas")
    p.add_argument("name")
    p = sub.add_parser("call", help="call one tool of a server and print the result")
    p.add_argument("name")
    p.add_argument("tool")
    p.add_argument("arguments", nargs="?", default="{}", help="the arguments as a JSON object")
    for p in sub.choices.values():
        p.add_argument("--cwd", default=".", help="the workspace whose configuration is used")


def scope_file(root: Path, scope: str) -> Path:
    from groundup.agent.prompt import config_dir
    return {"local": root / ".groundup" / "settings.local.json", "project": root / ".mcp.json",
            "user": config_dir() / "settings.json"}[scope]


def run(args: argparse.Namespace) -> int:
    root = Path(args.cwd).expanduser()
    if not root.is_dir():
        raise UserError(f"--cwd {args.cwd} is not a directory")
    root = root.resolve()
    return {"serve": serve, "add": add, "list": list_servers, "remove": remove,
            "tools": tools, "call": call}[args.action](args, root)


# ---------------------------------------------------------------- serve

def serve(args: argparse.Namespace, root: Path) -> int:
    from groundup.agent.permissions import Permissions
    from groundup.agent.settings import load_settings
    from groundup.mcp.http_server import serve_http
    from groundup.mcp.server import McpServer, serve_stdio
    served = (root / args.root) if not Path(args.root).is_absolute() else Path(args.root)
    if not served.is_dir():
        raise UserError(f"--root {args.root} is not a directory")
    s = load_settings(served.resolve())
    permissions = Permissions(mode=args.permission_mode or s.permission_mode,
                              allow=list(s.allow), deny=list(s.deny))
    from groundup.agent.search_code import search_code_sources
    # search_code (retrieval) when the workspace has an index (`groundup index`)
    sources = search_code_sources(served.resolve(), permissions.readable)
    server = McpServer(served, allow_writes=args.allow_writes, permissions=permissions,
                       sources=sources)
    if args.transport == "stdio":
        if args.token:
            raise UserError("--token is for --transport http (a stdio server is started by "
                            "its client and reachable by nobody else)")
        print(f"groundup mcp: serving {server.root} on stdio", file=sys.stderr, flush=True)
        serve_stdio(server)
        return 0
    token = args.token or os.environ.get("GROUNDUP_MCP_TOKEN") or None
    if args.host not in ("127.0.0.1", "localhost", "::1") and token is None:
        print("groundup mcp: warning: serving beyond this machine without --token: anyone who "
              "can reach the port can read the workspace", file=sys.stderr)
    try:
        serve_http(server, args.host, args.port, token)
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({e.strerror or e}); "
                        "choose another --port") from None
    return 0


# ---------------------------------------------------------------- configuration

def add(args: argparse.Namespace, root: Path) -> int:
    from groundup.mcp.config import write_server
    target = list(args.target)
    if target and target[0] == "--":
        target = target[1:]
    entry: dict = {}
    if args.transport == "http":
        if len(target) != 1:
            raise UserError("usage: groundup mcp add --transport http NAME URL")
        entry = {"type": "http", "url": target[0]}
        if args.header:
            headers = {}
            for h in args.header:
                key, sep, value = h.partition(":")
                if not sep or not key.strip():
                    raise UserError(f"--header {h!r}: write it as 'Name: value'")
                headers[key.strip()] = value.strip()
            entry["headers"] = headers
    else:
        if not target:
            raise UserError("usage: groundup mcp add NAME -- COMMAND [ARGS...] (the command "
                            "that starts the server)")
        entry = {"command": target[0], "args": target[1:]}
        if args.env:
            env = {}
            for e in args.env:
                key, sep, value = e.partition("=")
                if not sep or not key:
                    raise UserError(f"-e {e!r}: write it as KEY=VALUE")
                env[key] = value
            entry["env"] = env
    if args.timeout is not None:
        entry["timeout"] = args.timeout
    path = scope_file(root, args.scope)
    write_server(path, args.name, entry)
    print(f"added MCP server {args.name!r} ({args.scope} scope: {path})")
    return 0


def remove(args: argparse.Namespace, root: Path) -> int:
    from groundup.mcp.config import read_json, write_server
    scopes = [args.scope] if args.scope else list(SCOPES)
    for scope in scopes:
        path = scope_file(root, scope)
        if args.name in (read_json(path).get("mcpServers") or {}):
            write_server(path, args.name, None)
            print(f"removed MCP server {args.name!r} from {path}")
            return 0
    raise UserError(f"no MCP server named {args.name!r} in the {'/'.join(scopes)} configuration; "
                    "`groundup mcp list` shows them")


def _servers(root: Path) -> dict:
    from groundup.agent.settings import load_settings
    return load_settings(root).mcp_servers


def list_servers(args: argparse.Namespace, root: Path) -> int:
    from groundup.agent.mcp_tools import McpTools
    servers = _servers(root)
    if not servers:
        print("no MCP servers configured; add one with `groundup mcp add NAME -- COMMAND ...`")
        return 0
    if args.no_connect:
        for name, cfg in servers.items():
            print(f"{name}  {cfg.describe()}  ({cfg.source})")
        return 0
    tools = McpTools(servers, cwd=str(root), warn=lambda m: None).start()
    try:
        for line in tools.status_lines():
            print(line)
    finally:
        tools.close()
    return 0


def _one(root: Path, name: str):
    from groundup.agent.mcp_tools import make_client
    from groundup.mcp.errors import McpError
    servers = _servers(root)
    if name not in servers:
        raise UserError(f"no MCP server named {name!r}; configured: {', '.join(servers) or 'none'}")
    client = make_client(servers[name], str(root))
    try:
        return client.connect()
    except McpError as e:
        raise UserError(str(e)) from None


def tools(args: argparse.Namespace, root: Path) -> int:
    client = _one(root, args.name)
    try:
        print(f"{args.name}: {client.server_info.get('name', '?')} "
              f"{client.server_info.get('version', '')}, protocol {client.version}")
        for t in client.list_tools():
            ro = " (read-only hint)" if (t.get("annotations") or {}).get("readOnlyHint") else ""
            print(f"\n{t['name']}{ro}: {t.get('description', '')}")
            print("  " + json.dumps(t.get("inputSchema", {}), ensure_ascii=False))
    finally:
        client.close()
    return 0


def call(args: argparse.Namespace, root: Path) -> int:
    from groundup.agent.mcp_tools import render_result
    from groundup.mcp.jsonrpc import RPCError
    from groundup.mcp.errors import McpError
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as e:
        raise UserError(f"the arguments are not valid JSON ({e}); pass an object like "
                        "'{\"path\": \"a.txt\"}'") from None
    if not isinstance(arguments, dict):
        raise UserError("the arguments must be a JSON object")
    client = _one(root, args.name)
    try:
        res = client.call_tool(args.tool, arguments)
    except (RPCError, McpError) as e:
        raise UserError(f"{args.name}: {e}") from None
    finally:
        client.close()
    print(render_result(res))
    return 1 if res.get("isError") else 0
