"""Putting an agent together from its settings: what the headless mode (cli.py) and the
interactive mode (tui.py) share.

    build_agent(args, root, settings, model, approver, on_event, ask_trust) -> Agent
    load_hooks(root, settings, ask_trust) -> Hooks
    sessions_dir(root), prepare_workspace(root)
    on_sigterm(), Terminated, TERM_RECEIVED

Design choices:
- cli.py parses the command line and chooses a mode; tui.py draws the terminal. Both need
  the same agent, built from the same settings, so it is built here -- and neither of them
  imports the other's module (cli.py only imports tui.py when the interactive mode starts).
- SIGTERM (`kill PID`) unwinds like Ctrl-C, so a running command's process group is killed
  and the session closed cleanly; `TERM_RECEIVED` tells the interactive loop to end rather
  than return to the prompt. A threading.Event, not a shared dict: one flag, set once.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from groundup.agent.checkpoints import Checkpoints
from groundup.agent.cost import price_for
from groundup.agent.hooks import Hooks, is_trusted, trust
from groundup.agent.permissions import Permissions
from groundup.agent.prompt import config_dir
from groundup.agent.sandbox import Sandbox
from groundup.agent.session import Session
from groundup.agent.subagents import Subagents, load_definitions
from groundup.agent.summary import context_window
from groundup.agent.settings import Settings
from groundup.errors import Terminated   # SIGTERM: unwinds like Ctrl-C, reported as exit 143


TERM_RECEIVED = threading.Event()


def _raise_terminated(signum: int, frame: Any) -> None:
    TERM_RECEIVED.set()
    raise Terminated


def on_sigterm() -> None:
    """From now on, `kill PID` stops a run like Ctrl-C does, and then ends the session."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def sessions_dir(root: Path) -> Path:
    return root / ".groundup" / "sessions"


def prepare_workspace(root: Path) -> None:
    """Make .groundup/ and keep all of it but the project's settings out of git (sessions,
    history and local settings are private; an untracked .groundup/ would also show up in
    the git status the system prompt reports)."""
    gi = root / ".groundup" / ".gitignore"
    if not gi.exists():
        gi.parent.mkdir(parents=True, exist_ok=True)
        gi.write_text("# written by groundup: only settings.json is meant to be committed\n"
                      "*\n!settings.json\n", encoding="utf-8")


def load_hooks(root: Path, s: Settings,
               ask_trust: Callable[[list[str]], bool] | None = None) -> Hooks:
    """The settings' hooks. The committed project file's run only once approved: asked now
    through `ask_trust` (the terminal), or left out with a warning (headless)."""
    hooks = list(s.hooks)
    if not is_trusted(config_dir(), root, hooks):
        project = [h for h in hooks if h.project]
        if ask_trust is not None and ask_trust([h.describe() for h in project]):
            trust(config_dir(), root, hooks)
        else:
            hooks = [h for h in hooks if not h.project]
            print(f"groundup: warning: {len(project)} hook(s) from the project's "
                  ".groundup/settings.json are not approved, so they do not run; review them "
                  "with `groundup hooks` and approve with `groundup hooks --approve`",
                  file=sys.stderr)
    return Hooks(hooks, root)


def hook_line(ev: dict[str, Any]) -> str:
    """A hook event (hooks.py) as one line for the user."""
    on = f" on {ev['tool']}" if ev.get("tool") else ""
    what = {"ok": "ran", "blocked": "blocked", "timeout": "timed out",
            "warning": f"failed (exit {ev['exit_code']})"}[ev["outcome"]]
    tail = f": {ev['stderr'].splitlines()[0]}" if ev.get("stderr") and ev["outcome"] != "ok" else ""
    return f"{ev['event']} hook{on} `{ev['command']}` {what}{tail}"


def mcp_sources(root: Path, s: Settings) -> tuple:
    """The configured MCP servers, connected (mcp_tools.py), as the agent's extra tools."""
    if not s.mcp_servers:
        return ()
    from groundup.agent.mcp_tools import McpTools
    return (McpTools(s.mcp_servers, cwd=str(root), trust_read_only=s.mcp_trust_read_only).start(),)


def mcp_of(agent: Any) -> Any:
    """The agent's McpTools, or None when no MCP server is configured."""
    from groundup.agent.mcp_tools import McpTools
    return next((t for t in agent.tool_sources if isinstance(t, McpTools)), None)


def search_code_sources(root: Path, visible: Callable[[str], bool]) -> tuple:
    """`search_code` when the workspace has a retrieval index (`groundup index`)."""
    from groundup.agent.search_code import search_code_sources as sources
    return sources(root, visible)


def build_agent(args: argparse.Namespace, root: Path, s: Settings, model: Any,
                approver: Callable | None = None, on_event: Callable | None = None,
                ask_trust: Callable[[list[str]], bool] | None = None):
    """The agent for this workspace: a new session, or the one --continue/--resume names."""
    from groundup.agent.loop import Agent
    session, messages = None, []
    if args.continue_ or args.resume:
        session = (Session.find(sessions_dir(root), args.resume) if args.resume
                   else Session.latest(sessions_dir(root)))
        messages = session.load()
    prepare_workspace(root)
    permissions = Permissions(mode=s.permission_mode, allow=list(s.allow), deny=list(s.deny),
                              approver=approver)
    extra_dirs = tuple(Path(d).expanduser() for d in s.add_dirs)
    sandbox = None
    if s.sandbox:
        sandbox = Sandbox(root, tuple(Path(d).resolve() for d in extra_dirs), s.sandbox_network,
                          permissions)
        sandbox.check()                    # no bwrap: refuse to start, never run unsandboxed
    compact = s.compact_prompt if s.compact_prompt is not None else \
        bool(model.compact_prompt)
    # our small models know only the core tools: no subagents for them
    subagents = None if compact else Subagents(load_definitions(root))
    agent = Agent(model, root, max_steps=s.max_steps, max_seconds=s.max_seconds,
                  session_dir=sessions_dir(root), compact_prompt=compact,
                  on_event=on_event, token_budget=s.max_tokens, permissions=permissions,
                  extra_dirs=extra_dirs, messages=messages, session=session,
                  hooks=load_hooks(root, s, ask_trust), checkpoints=Checkpoints(root, extra_dirs),
                  tool_sources=((subagents,) if subagents else ()) + mcp_sources(root, s)
                  + (() if compact else search_code_sources(root, permissions.readable)),
                  sandbox=sandbox, context_window=context_window(model.name, s.context_window),
                  price=price_for(model.name, s.prices))
    if subagents is not None:
        subagents.parent = agent
    return agent
