"""`groundup` / `groundup agent`: the coding agent on the command line.

    groundup                          interactive session in this directory
    groundup -p "fix the failing test" [--output-format text|json|stream-json]
    groundup --continue | --resume ID [-p TASK]

Design choices:
- Everything that can be wrong with the input (workspace, settings, model string, API key,
  endpoint) is checked before the first model call, and reported as one line (UserError).
- Headless (`-p`) never asks: actions that need approval are refused and the model is told
  why, so a CI job cannot hang on a prompt. Exit codes: 0 done, 1 error or limit, 2 bad
  input (before anything ran), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
- `stream-json` prints the loop's own events (loop.py), one JSON object per line, flushed as
  they happen; `json` prints one object at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from groundup.agent.build import build_agent, hook_line, mcp_of, on_sigterm, sessions_dir
from groundup.agent.commands import expand_command
from groundup.agent.permissions import MODES
from groundup.agent.session import Session
from groundup.agent.settings import Settings, load_settings
from groundup.argtypes import existing_dir, positive_float, positive_int
from groundup.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, UserError

EXIT_CODES = {"end_turn": 0, "interrupted": EXIT_INTERRUPTED, "terminated": EXIT_TERMINATED}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("The coding agent. With no -p it opens an interactive session in a "
                          "terminal; with -p TASK it runs headless and prints the result. "
                          "Settings come from ~/.config/groundup/settings.json, "
                          ".groundup/settings.json and .groundup/settings.local.json "
                          "(the command line wins).")
    parser.add_argument("-p", "--print", dest="task", metavar="TASK",
                        help="run headless on TASK ('-' reads it from stdin) and print the result")
    parser.add_argument("--model", "-m", metavar="SPEC",
                        help="local:PATH | openai:NAME | anthropic:NAME | replay:FILE "
                             "(default: the settings' model, or $GROUNDUP_MODEL)")
    parser.add_argument("--base-url", metavar="URL",
                        help="endpoint for openai: models (vLLM, SGLang, Ollama, llama.cpp, `groundup serve`, ...)")
    parser.add_argument("--permission-mode", choices=MODES,
                        help="default: ask before writes and bash; accept-edits: ask before "
                             "bash only; plan: read-only; yolo: never ask (still confined)")
    parser.add_argument("--allow", action="append", default=[], metavar="RULE",
                        help="allow rule, e.g. 'bash(git status:*)' or 'edit(src/**)' (repeatable)")
    parser.add_argument("--deny", action="append", default=[], metavar="RULE",
                        help="deny rule, e.g. 'read(.env)'; deny beats allow (repeatable)")
    parser.add_argument("--output-format", choices=("text", "json", "stream-json"), default="text",
                        help="headless output: the final text, one JSON object, or one JSON "
                             "event per line as it happens")
    parser.add_argument("--max-steps", type=positive_int, metavar="N", help="stop after N model turns")
    parser.add_argument("--max-seconds", type=positive_float, metavar="S",
                        help="stop after S seconds (waiting on the model included)")
    parser.add_argument("--max-tokens", type=positive_int, metavar="N",
                        help="stop once the run used N tokens (prompt + completion, all turns)")
    parser.add_argument("-c", "--continue", dest="continue_", action="store_true",
                        help="continue the latest session in this workspace")
    parser.add_argument("-r", "--resume", metavar="ID",
                        help="resume session ID (or a unique prefix) with its full history")
    parser.add_argument("--list-sessions", action="store_true",
                        help="list this workspace's sessions and exit")
    parser.add_argument("--cwd", metavar="DIR", default=".",
                        help="the workspace: the agent's tools cannot leave it (default: .)")
    parser.add_argument("--add-dir", action="append", default=[], metavar="DIR", type=existing_dir,
                        help="another directory the tools may use (repeatable)")
    parser.add_argument("--sandbox", action="store_const", const=True, default=None,
                        help="run every bash command under bubblewrap: only the workspace "
                             "writable, credentials hidden, no network (settings: \"sandbox\")")
    prompt = parser.add_mutually_exclusive_group()
    prompt.add_argument("--compact-prompt", dest="compact_prompt", action="store_const",
                        const=True, help="the two-line system prompt for small models")
    prompt.add_argument("--full-prompt", dest="compact_prompt", action="store_const",
                        const=False, help="the full system prompt (environment, tools, memory)")


def resolve_settings(args: argparse.Namespace) -> tuple[Path, Settings]:
    root = Path(args.cwd).expanduser()
    if not root.is_dir():
        raise UserError(f"workspace {args.cwd} does not exist or is not a directory")
    root = root.resolve()
    for option in ("max_steps", "max_seconds", "max_tokens"):
        value = getattr(args, option)
        if value is not None and value <= 0:
            raise UserError(f"--{option.replace('_', '-')} must be positive")
    s = load_settings(root, {
        "model": args.model, "base_url": args.base_url, "max_steps": args.max_steps,
        "max_seconds": args.max_seconds, "max_tokens": args.max_tokens,
        "compact_prompt": args.compact_prompt, "add_dirs": args.add_dir, "sandbox": args.sandbox,
        "permissions": {"mode": args.permission_mode, "allow": args.allow, "deny": args.deny}
        if (args.permission_mode or args.allow or args.deny) else None})
    if s.model is None:
        s.model = os.environ.get("GROUNDUP_MODEL")
    if not s.model:
        raise UserError("no model given: pass --model SPEC (e.g. local:runs/cpu/model, "
                        "openai:gpt-4o-mini, anthropic:claude-sonnet-4-5) or set \"model\" in "
                        ".groundup/settings.json")
    for d in s.add_dirs:
        if not Path(d).expanduser().is_dir():
            raise UserError(f"--add-dir {d}: not a directory")
    return root, s


def load_agent_model(s: Settings) -> Any:
    """The model, checked before anything starts (unknown string, missing key, endpoint)."""
    from groundup.providers import load_model
    options: dict[str, Any] = {}
    if s.base_url:
        options["base_url"] = s.base_url
    model = load_model(s.model, **options)
    model.check()               # no server, key refused, unknown model: said now, in one line
    return model


def run(args: argparse.Namespace) -> int:
    root = Path(args.cwd).expanduser()
    if args.list_sessions:
        for sess in Session.list(sessions_dir(root.resolve())):
            print(sess.summary())
        return 0
    root, s = resolve_settings(args)
    # `kill PID` (SIGTERM) stops a run like Ctrl-C does: the running command's process group
    # is killed and the session closed cleanly, instead of orphaning a test server; the
    # result says "terminated" and the exit code is 143 (errors.Terminated)
    on_sigterm()
    if args.task is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise UserError("the interactive mode needs a terminal; for scripts and pipes use "
                            "`groundup -p TASK` (headless)")
        model = load_agent_model(s)
        from groundup.agent.tui import interactive
        return interactive(args, root, s, model)
    task = sys.stdin.read() if args.task == "-" else args.task
    if not task.strip():
        raise UserError("the task is empty: pass the task after -p")
    task = expand_command(task.strip(), root) or task      # `/review x`: a custom command
    model = load_agent_model(s)
    return headless(args, root, s, model, task)


def headless(args: argparse.Namespace, root: Path, s: Settings, model: Any, task: str) -> int:
    fmt = args.output_format

    progress = fmt == "text" and sys.stderr.isatty()

    def on_event(event: dict[str, Any]) -> None:
        if fmt == "stream-json" and event["type"] != "text":
            print(json.dumps(event, ensure_ascii=False), flush=True)
        elif progress and event["type"] == "tool_call":
            # a person watching a text-mode run sees what the agent does, on stderr
            args = json.dumps(event["arguments"], ensure_ascii=False)
            print(f"● {event['name']} {args[:100]}", file=sys.stderr, flush=True)
        elif fmt != "stream-json" and event["type"] == "hook" and event["outcome"] in ("warning",
                                                                                    "timeout"):
            print(f"groundup: warning: {hook_line(event)}", file=sys.stderr, flush=True)

    agent = build_agent(args, root, s, model, approver=None, on_event=on_event)
    if fmt == "stream-json":
        on_event({"type": "system", "session_id": agent.session.id, "model": model.name,
                  "cwd": str(root), "permission_mode": s.permission_mode, "sandbox": s.sandbox,
                  "tools": [t["name"] for t in agent.toolbox.schemas()]})
    mcp = mcp_of(agent)
    res = agent.run(mcp.expand_mentions(task) if mcp is not None else task)
    if fmt == "json":
        print(json.dumps(res.to_json(), ensure_ascii=False), flush=True)
    elif fmt == "text":
        print(res.result, flush=True)
    if res.is_error:        # in every format: a script's log shows why, in one line
        print(f"groundup: {res.stop_reason}: {res.result} (session {res.session_id})",
              file=sys.stderr)
    return EXIT_CODES.get(res.stop_reason, 1)
