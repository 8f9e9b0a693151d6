"""The interactive mode: `groundup` alone, in a terminal.

What a session looks like:

    groundup · replay:demo.jsonl · ~/src/calc · default mode · session 20261125-190102-3fa2
    > the tests fail, fix them
    ● read_file calc.py
      read 6 lines
    ● edit_file calc.py
      Allow edit calc.py? [y]es / [n]o / [a]lways for this session: y
      @@ -1,2 +1,2 @@ ...
    Fixed `add`.

Design choices:
- The agent loop knows nothing about terminals: it emits events (loop.py) and asks for
  approval through a callback (permissions.py). This file renders events and answers the
  callback; the headless mode renders the same events as JSON.
- Input is prompt_toolkit: history in .groundup/history, bracketed paste (a pasted block
  with newlines stays one message), Esc+Enter for a newline by hand.
- The model's text streams as rich Markdown in a `Live` region, which is closed before
  anything else is printed (tool lines, a permission prompt), so the two never interleave.
- Tool results are summarised: edits show their diff, bash output is folded to its last
  lines, reads and searches show a count; the model still gets everything.
- Ctrl-C during a turn raises KeyboardInterrupt in the loop, which kills a running command
  (shell.py), answers unanswered calls, and returns to the prompt with the session intact.
  Ctrl-C at the prompt clears the line; Ctrl-D or /exit leaves.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit import prompt as pt_prompt
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings
from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.syntax import Syntax
from rich.text import Text

from groundup.agent.build import (TERM_RECEIVED, Terminated, build_agent, hook_line, mcp_of,
                                  prepare_workspace, sessions_dir)
from groundup.agent.checkpoints import check_turn, describe_turns, preview, turn_starts
from groundup.agent.commands import load_commands
from groundup.agent.cost import cost_usd, format_cost
from groundup.agent.permissions import MODES
from groundup.agent.session import Session
from groundup.agent.settings import Settings
from groundup.agent.tools import render_todos
from groundup.errors import UserError

FOLD_LINES = 6
HELP = """\
/help            this list
/status          model, session, permission mode, tokens, context, cost, todo list
/model [SPEC]    show the model, or switch to another (e.g. /model openai:gpt-4o-mini)
/mode [MODE]     show or set the permission mode (default, accept-edits, plan, yolo)
/clear           start a new session (the old one stays on disk)
/resume [ID]     list sessions, or resume one with its full history
/rewind [N]      list your turns, or undo the agent's file edits and the conversation
                 back to before turn N (a diff first; bash's changes are not covered)
/compact [TEXT]  replace the old turns by the model's summary (TEXT: what to keep)
/hooks           the hooks that run around prompts and tools (settings "hooks")
/mcp             MCP servers: status, tools, prompts (/mcp__SERVER__PROMPT args runs one)
/exit            leave (Ctrl-D too)
Esc then Enter inserts a newline; Ctrl-C cancels the running turn."""


class TerminalUI:
    def __init__(self, console: Console):
        self.console = console
        self.live: Live | None = None
        self.text = ""
        self.calls: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------ events from the loop

    def on_event(self, ev: dict[str, Any]) -> None:
        kind = ev["type"]
        if kind == "text":
            self.text += ev["text"]
            if self.live is None:
                self.live = Live(Markdown(self.text), console=self.console,
                                 refresh_per_second=10, vertical_overflow="visible")
                self.live.start()
            self.live.update(Markdown(self.text))
        elif kind == "assistant":
            self.end_text()
        elif kind == "tool_call":
            self.calls[ev["id"]] = ev
            self.console.print(Text("● ", style="cyan") + Text(call_line(ev), style="bold"))
        elif kind == "tool_result":
            self.show_result(ev)
        elif kind == "compact":
            self.show_compact(ev)
        elif kind == "hook":
            style = {"ok": "dim", "blocked": "red"}.get(ev["outcome"], "yellow")
            self.console.print(Text("  ↪ " + hook_line(ev), style=style))
        elif kind == "subagent":
            self.show_subagent(ev["agent"], ev["event"])
        elif kind == "todos":
            self.console.print(Text(render_todos(ev["todos"]), style="magenta"))
        elif kind == "result" and ev["is_error"]:
            self.end_text()
            self.console.print(Text(f"[{ev['stop_reason']}] {ev['result']}", style="yellow"))

    def end_text(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        self.text = ""

    def show_compact(self, ev: dict[str, Any]) -> None:
        why = {"auto": "the context is nearly full", "overflow": "the context overflowed",
               "manual": "/compact"}.get(ev.get("reason", ""), "the context overflowed")
        if ev.get("summary"):
            self.console.print(Text(f"(compacted, {why}: {ev['replaced']} messages replaced by "
                                    "the model's summary)", style="dim"))
            self.console.print(Text(fold(ev["summary"], 12), style="dim italic"))
        else:
            problem = f"{ev['problem']}; " if ev.get("problem") else ""
            self.console.print(Text(f"(compacted, {why}: {problem}showing the model a stubbed "
                                    f"view, level {ev['level']})", style="dim"))

    def show_subagent(self, agent: str, ev: dict[str, Any]) -> None:
        """A child's calls, one dim line each; its results stay in its own transcript."""
        if ev["type"] == "tool_call":
            self.console.print(Text(f"  │ {agent}: {call_line(ev)}", style="dim"))
        elif ev["type"] == "hook" and ev["outcome"] != "ok":
            self.console.print(Text(f"  │ {agent}: {hook_line(ev)}", style="yellow"))
        elif ev["type"] == "result":
            self.console.print(Text(f"  │ {agent}: {ev['stop_reason']} after {ev['num_steps']} "
                                    "step(s)", style="dim"))

    def show_result(self, ev: dict[str, Any]) -> None:
        content, name = ev["content"], ev["name"]
        if ev["is_error"]:
            self.console.print(Text("  " + fold(content, FOLD_LINES), style="red"))
        elif ev.get("display"):
            self.console.print(Syntax(ev["display"], "diff", theme="ansi_dark",
                                      background_color="default"))
        elif name == "bash":
            self.console.print(Text("  " + fold(content, FOLD_LINES), style="dim"))
        elif name == "read_file":
            n = sum(1 for ln in content.splitlines() if ln[:6].strip().isdigit())
            self.console.print(Text(f"  read {n} lines", style="dim"))
        elif name in ("grep", "glob", "list_dir"):
            n = len(content.splitlines())
            self.console.print(Text(f"  {n} result line(s)", style="dim"))
        elif name != "todo_write":
            self.console.print(Text("  " + fold(content, FOLD_LINES), style="dim"))

    # ------------------------------------------------------------ permission prompts

    def approve(self, tool: str, arguments: dict[str, Any], summary: str) -> str:
        self.end_text()
        if tool == "edit_file":
            self.console.print(Text(f"  - {arguments['old_string']}", style="red"))
            self.console.print(Text(f"  + {arguments['new_string']}", style="green"))
        answer = pt_prompt(f"  Allow {summary}? [y]es / [n]o / [a]lways for this session: ")
        answer = answer.strip().lower()
        if answer in ("a", "always"):
            return "always"
        return "yes" if answer in ("y", "yes") else "no"

    def ask_trust(self, hooks: list[str]) -> bool:
        """Run the hooks of the project's committed settings? (asked once per change)"""
        self.console.print(Text("The project's .groundup/settings.json defines hooks, commands "
                                "that groundup runs by itself:", style="yellow"))
        for h in hooks:
            self.console.print(Text(f"  {h}"))
        answer = pt_prompt("  Run them in this project? [y]es / [n]o: ")
        return answer.strip().lower() in ("y", "yes")


def status_line(agent: Any) -> str:
    """The line under the prompt: model, mode, how full the context is."""
    used, window = agent.context_used, agent.context_window
    context = f"context {used / 1000:.1f}k"
    if window:
        context += f" of {window / 1000:.0f}k ({100 * used / window:.0f}%)"
    money = cost_usd(agent.total_usage, agent.price)
    spent = f" · ${money:.4f}" if money else ""
    return f" {agent.model.name} · {agent.permissions.mode} · {context}{spent}"


def call_line(ev: dict[str, Any]) -> str:
    """`read_file  calc.py offset=10`: the tool and the arguments worth a glance."""
    args = ev.get("arguments") or {}
    if ev["name"] == "bash":
        return f"bash  {args.get('command', '')}"
    if ev["name"] == "todo_write":
        return f"todo_write  {len(args.get('todos') or [])} items"
    if ev["name"] == "task":
        return f"task  {args.get('subagent_type', '?')}: {args.get('description', '')}"
    shown = [str(args[k]) for k in ("pattern", "path") if k in args]
    shown += [f"{k}={v}" for k, v in args.items() if k in ("offset", "limit", "glob", "replace_all")]
    return f"{ev['name']}  " + " ".join(shown)


def fold(text: str, keep: int) -> str:
    """The last `keep` lines, with a count of the ones hidden above."""
    lines = text.splitlines()
    if len(lines) <= keep:
        return "\n  ".join(lines)
    return f"… {len(lines) - keep} lines above …\n  " + "\n  ".join(lines[-keep:])


def key_bindings() -> KeyBindings:
    kb = KeyBindings()

    @kb.add("escape", "enter")
    def _(event):
        event.current_buffer.insert_text("\n")

    return kb


def interactive(args: argparse.Namespace, root: Path, s: Settings, model: Any) -> int:
    console = Console(highlight=False)
    ui = TerminalUI(console)
    agent = build_agent(args, root, s, model, approver=ui.approve, on_event=ui.on_event,
                        ask_trust=ui.ask_trust)
    prepare_workspace(root)
    history = FileHistory(str(root / ".groundup" / "history"))
    prompt_session: PromptSession = PromptSession(history=history, key_bindings=key_bindings(),
                                                  bottom_toolbar=lambda: status_line(agent))
    sandboxed = " · sandboxed" if agent.sandbox is not None else ""
    console.print(Text(f"groundup · {model.name} · {root} · {agent.permissions.mode} mode{sandboxed} · "
                       f"session {agent.session.id}", style="bold cyan"))
    if agent.messages:
        users = sum(m["role"] == "user" for m in agent.messages)
        console.print(Text(f"resumed: {len(agent.messages)} messages, {users} from you", style="dim"))
    console.print(Text("/help for commands, Ctrl-C cancels a turn, /exit leaves", style="dim"))
    while True:
        try:
            text = prompt_session.prompt("> ")
        except Terminated:
            break
        except KeyboardInterrupt:
            continue                       # Ctrl-C at the prompt clears the line
        except EOFError:
            break
        text = text.strip()
        if not text:
            continue
        if text.startswith("/"):
            try:
                text = slash_command(text, agent, ui, root)
            except UserError as e:
                console.print(Text(f"error: {e}", style="red"))
                continue
            if text == EXIT:
                break
            if text is None:
                continue                   # a command of the interface; else a custom prompt
        mcp = mcp_of(agent)
        try:
            res = agent.run(mcp.expand_mentions(text) if mcp is not None else text)
        except Terminated:                 # SIGTERM outside the loop's own handler
            break
        ui.end_text()
        if TERM_RECEIVED.is_set():
            break
        if res.stop_reason == "interrupted":
            console.print(Text("interrupted; the session goes on", style="yellow"))
    console.print(Text(f"session saved: {agent.session.id} (groundup --resume {agent.session.id})",
                       style="dim"))
    return 0


EXIT = "\x00exit"


def mcp_command(agent: Any, out: Console, cmd: str, arg: str) -> str | None:
    """/mcp lists the servers; /mcp__SERVER__PROMPT returns that prompt's text as the turn."""
    from groundup.agent.tools import ToolError
    mcp = mcp_of(agent)
    if mcp is None:
        raise UserError("no MCP servers configured (.mcp.json or `groundup mcp add`)")
    if cmd != "/mcp":
        try:
            return mcp.prompt_command(cmd, arg)
        except ToolError as e:
            raise UserError(str(e)) from None
    for line in mcp.status_lines():
        out.print(line, markup=False)
    names = [t["name"] for t in mcp.schemas()]
    out.print("tools: " + (", ".join(names) or "none"), markup=False)
    for server, p in mcp.prompts():
        args = " ".join(a.get("name", "") for a in p.get("arguments") or [])
        out.print(f"/mcp__{server}__{p.get('name')} {args}  {p.get('description', '')}", markup=False)
    return None


def slash_command(text: str, agent: Any, ui: TerminalUI, root: Path) -> str | None:
    """Do a command of the interface (None), leave (EXIT), or return the prompt a custom
    command (commands.py) stands for."""
    cmd, _, arg = text.partition(" ")
    arg = arg.strip()
    out = ui.console
    if cmd in ("/exit", "/quit"):
        return EXIT
    custom = load_commands(root)
    if cmd == "/help":
        out.print(HELP)
        if custom:
            out.print("custom commands (.groundup/commands/, ~/.config/groundup/commands/):")
            for c in custom.values():
                out.print(f"/{c.name:<15} {c.description}", markup=False)
    elif cmd == "/status":
        u = agent.total_usage
        out.print(f"model: {agent.model.name}\nsession: {agent.session.id} "
                  f"({len(agent.messages)} messages)\npermission mode: {agent.permissions.mode}\n"
                  f"tokens: {u.prompt_tokens} prompt + {u.completion_tokens} completion = "
                  f"{u.prompt_tokens + u.completion_tokens}\n{status_line(agent).strip()}\n"
                  f"cost: {format_cost(u, agent.price)}", markup=False)
        if agent.toolbox.todos:
            out.print(render_todos(agent.toolbox.todos))
    elif cmd == "/model":
        if arg:
            from groundup.providers import load_model
            agent.model = load_model(arg)
        out.print(f"model: {agent.model.name}")
    elif cmd == "/mode":
        if arg:
            if arg not in MODES:
                raise UserError(f"unknown mode {arg!r}: use one of {', '.join(MODES)}")
            agent.permissions.mode = arg
        out.print(f"permission mode: {agent.permissions.mode}")
    elif cmd == "/clear":
        agent.messages = []
        agent.session = Session.create(sessions_dir(root))
        agent.toolbox.read_state.clear()
        agent.toolbox.todos = []
        agent.compact_level = 0
        agent.context_used, agent.summary_failed = 0, False
        out.print(f"new session {agent.session.id}")
    elif cmd == "/resume":
        if not arg:
            for sess in Session.list(sessions_dir(root))[-10:]:
                out.print(sess.summary())
            out.print("resume one with /resume ID")
        else:
            sess = Session.find(sessions_dir(root), arg)
            agent.messages = sess.load()
            agent.session = sess
            agent.toolbox.read_state.clear()
            agent.compact_level = 0
            agent.context_used, agent.summary_failed = 0, False
            out.print(f"resumed {sess.id}: {len(agent.messages)} messages")
    elif cmd == "/compact":
        if not agent.messages:
            raise UserError("nothing to compact yet")
        agent.summarise(arg, reason="manual")
    elif cmd == "/rewind":
        rewind(agent, ui, root, arg)
    elif cmd == "/hooks":
        lines = agent.hooks.listing()
        out.print("\n".join(lines) if lines else "no hooks configured (settings \"hooks\", see "
                                                  "`groundup hooks`)", markup=False)
    elif cmd == "/mcp" or cmd.startswith("/mcp__"):
        return mcp_command(agent, out, cmd, arg)
    elif cmd[1:] in custom:
        return custom[cmd[1:]].expand(arg)
    else:
        out.print(f"unknown command {cmd}; /help lists them")
    return None


def rewind(agent: Any, ui: TerminalUI, root: Path, arg: str) -> None:
    """/rewind [N]: the same as `groundup rewind N` (rewind_cli.py), on the live session."""
    out, cp = ui.console, agent.checkpoints
    if cp is None or agent.session is None:
        raise UserError("this session keeps no checkpoints")
    if not arg:
        out.print("\n".join(describe_turns(agent.session, cp)) or "no turns yet", markup=False)
        out.print("rewind with /rewind N (to before turn N)")
        return
    if not arg.isdigit():
        raise UserError("/rewind takes a turn number (see /rewind)")
    turn = int(arg)
    check_turn(agent.session, turn)
    changes, bash = cp.plan(agent.session.id, turn)
    out.print(Syntax(preview(changes, bash, turn), "diff", theme="ansi_dark",
                     background_color="default"))
    if pt_prompt("  Rewind files and conversation? [y]es / [n]o: ").strip().lower() not in ("y", "yes"):
        out.print("nothing changed")
        return
    cp.apply(agent.session.id, changes)
    new = cp.fork(agent.session, turn, sessions_dir(root))
    agent.session, agent.messages = new, new.load()
    agent.turn = len(turn_starts(agent.messages))
    agent.toolbox.read_state.clear()
    agent.compact_level = 0
    agent.context_used, agent.summary_failed = 0, False
    out.print(f"restored {len(changes)} file(s); the conversation continues before turn {turn} "
              f"in session {new.id}")
