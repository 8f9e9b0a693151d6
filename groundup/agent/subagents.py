"""Subagents: the `task` tool hands a piece of work to a child agent with a context of its own.

    task(description, prompt, subagent_type)  ->  the child's final answer, and nothing else

This is how Claude Code keeps a long session's context small: a search through forty files
happens in the child's context, and the parent reads one paragraph. The child is the same
loop (loop.py) with its own messages, a subset of the tools, a step budget, and the same
permissions and hooks as its parent; its transcript is saved beside the parent's session:

    .groundup/sessions/<parent-id>.jsonl
    .groundup/sessions/<parent-id>/task-1-explore.jsonl

Definitions are Markdown files, like custom commands (commands.py):

    .groundup/agents/NAME.md   (the project's)   ~/.config/groundup/agents/NAME.md   (yours)
    ---
    description: reviews a diff for bugs; read-only
    tools: read_file, grep, glob, list_dir        (default: every tool but task)
    model: anthropic:claude-haiku-4-5             (default: inherit the parent's)
    max_steps: 15                                 (default: 25)
    ---
    You are a careful code reviewer. ...          (the child's system prompt intro)

Two are built in (a file of the same name replaces them): `general-purpose` (every tool)
and `explore` (read-only: read_file, grep, glob, list_dir).

Design choices:
- One door for tools: `task` is a ToolSource (tools.py), so the Toolbox checks its arguments
  and the permission system sees it like any other tool. It is scheduled as read-only -- the
  loop may run several `task` calls of one turn in parallel threads -- because the child's
  own calls each pass the permission system; a child whose tools can write holds a lock, so
  writing children run one at a time while read-only ones run side by side.
- A child cannot start children (no `task` among its tools): the tree is one level deep.
- Usage (tokens, cost) of the children is added to the parent's: it was spent for it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundup.agent.commands import parse_front_matter
from groundup.agent.cost import price_for
from groundup.agent.loop import Agent
from groundup.agent.prompt import config_dir
from groundup.agent.session import Session
from groundup.agent.tools import READ_ONLY, TOOL_NAMES, ToolError, ToolResult
from groundup.errors import UserError

DEFAULT_MAX_STEPS = 25


@dataclass(frozen=True)
class AgentDefinition:
    name: str
    description: str
    prompt: str
    tools: tuple[str, ...] | None = None       # None: every tool the parent has, but task
    model: str | None = None                   # None: the parent's model
    max_steps: int = DEFAULT_MAX_STEPS
    source: str = "built-in"


BUILT_IN = {
    "general-purpose": AgentDefinition(
        "general-purpose", "any self-contained task: research, a change across files, a check",
        "You are a subagent of groundup, a coding agent. You were given one self-contained "
        "task; do it with the tools, then answer with what the parent agent needs to know -- "
        "findings, file paths and line numbers, what you changed -- concisely. Your final "
        "answer is the only thing the parent will read."),
    "explore": AgentDefinition(
        "explore", "read-only search of the code base: where is X defined, how does Y work",
        "You are a read-only search subagent of groundup, a coding agent. Find what you were "
        "asked for with read_file, grep, glob and list_dir, then answer with the facts the "
        "parent needs: file paths, line numbers, short excerpts. You cannot change files.",
        tools=("read_file", "grep", "glob", "list_dir")),
}


def agent_dirs(root: Path) -> list[Path]:
    """Lowest precedence first."""
    return [config_dir() / "agents", Path(root) / ".groundup" / "agents"]


def parse_definition(path: Path) -> AgentDefinition:
    meta, body = parse_front_matter(path.read_text(encoding="utf-8"), str(path))
    if not body:
        raise UserError(f"{path}: the body (the subagent's system prompt) is empty")
    tools = None
    if meta.get("tools") and meta["tools"] != "*":
        tools = tuple(t.strip() for t in meta["tools"].split(",") if t.strip())
        if "task" in tools:
            raise UserError(f"{path}: a subagent cannot have the task tool (no grandchildren)")
    steps = meta.get("max_steps", str(DEFAULT_MAX_STEPS))
    if not steps.isdigit() or int(steps) < 1:
        raise UserError(f"{path}: max_steps must be a positive whole number (got {steps!r})")
    model = meta.get("model") or None
    return AgentDefinition(path.stem, meta.get("description") or body.splitlines()[0][:80],
                           body, tools, None if model == "inherit" else model, int(steps),
                           str(path))


def load_definitions(root: Path) -> dict[str, AgentDefinition]:
    found = dict(BUILT_IN)
    for directory in agent_dirs(root):
        if directory.is_dir():
            for path in sorted(directory.glob("*.md")):
                found[path.stem] = parse_definition(path)
    return found


@dataclass
class Subagents:
    """The `task` tool (a tools.ToolSource). `parent` is the Agent it serves, set once that
    agent exists (build.py)."""
    definitions: dict[str, AgentDefinition]
    parent: Any = None
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    writer: threading.Lock = field(default_factory=threading.Lock)

    def schemas(self) -> list[dict[str, Any]]:
        kinds = "\n".join(f"- {d.name}: {d.description}" for d in self.definitions.values())
        return [{"name": "task",
                 "description": "Hand a self-contained task to a subagent with a fresh context; "
                                "you get back only its final answer. Use it for searches and "
                                "side work that would fill your context. Several read-only "
                                "tasks in one turn run in parallel. Subagents:\n" + kinds,
                 "parameters": {"type": "object", "properties": {
                     "description": {"type": "string", "description": "3-5 words: what for"},
                     "prompt": {"type": "string",
                                "description": "the task, with everything the subagent needs "
                                               "to know (it does not see your conversation)"},
                     "subagent_type": {"type": "string", "enum": list(self.definitions),
                                       "description": "which subagent"}},
                     "required": ["description", "prompt", "subagent_type"],
                     "additionalProperties": False}}]

    def is_read_only(self, name: str) -> bool:
        return True          # the child's own calls are checked one by one (module docstring)

    def call(self, name: str, args: dict[str, Any]) -> ToolResult:
        d = self.definitions.get(args["subagent_type"])
        if d is None:
            raise ToolError(f"unknown subagent_type {args['subagent_type']!r}; use one of "
                            + ", ".join(self.definitions))
        tools, sources = self.tools_for(d)
        writes = any(t not in READ_ONLY for t in tools) or any(
            not src.is_read_only(s["name"]) for src in sources for s in src.schemas())
        if writes:
            with self.writer:
                return self.run_child(d, args["prompt"], tools, sources)
        return self.run_child(d, args["prompt"], tools, sources)

    def tools_for(self, d: AgentDefinition) -> tuple[tuple[str, ...], list[Any]]:
        """The child's core tools and the parent's other tool sources it may use."""
        parent = self.parent
        others = [src for src in parent.tool_sources if src is not self]
        offered = {s["name"] for src in others for s in src.schemas()}
        if d.tools is None:
            return tuple(parent.toolbox.names), others
        unknown = [t for t in d.tools if t not in TOOL_NAMES and t not in offered]
        if unknown:
            raise ToolError(f"subagent {d.name} ({d.source}) names unknown tool(s) "
                            f"{', '.join(unknown)}; the tools are "
                            + ", ".join([*TOOL_NAMES, *sorted(offered)]))
        wanted = set(d.tools)
        return (tuple(t for t in TOOL_NAMES if t in wanted),
                [Only(src, wanted) for src in others if wanted & {s["name"] for s in src.schemas()}])

    def run_child(self, d: AgentDefinition, prompt: str, tools: tuple[str, ...],
                  sources: list[Any]) -> ToolResult:
        parent = self.parent
        with self.lock:
            self.count += 1
            n = self.count
        session = None
        if parent.session is not None:
            session = Session(parent.session.path.with_suffix("") / f"task-{n}-{d.name}.jsonl")
            session.path.parent.mkdir(parents=True, exist_ok=True)
        model = parent.model
        if d.model:
            from groundup.providers import load_model
            model = load_model(d.model)
        label = f"task-{n}-{d.name}"

        def forward(ev: dict[str, Any]) -> None:
            if parent.cancelled.is_set():
                raise KeyboardInterrupt           # the user's Ctrl-C, in a worker thread
            if ev["type"] in ("tool_call", "tool_result", "hook", "result"):
                parent.emit({"type": "subagent", "agent": label, "event": ev})

        child = Agent(model, parent.root, max_steps=d.max_steps, compact_prompt=parent.compact_prompt,
                      on_event=forward, permissions=parent.permissions, extra_dirs=parent.extra_dirs,
                      session=session, tool_sources=tuple(sources), hooks=parent.hooks,
                      tools=tools, instructions=d.prompt, max_output_tokens=parent.max_output_tokens,
                      sandbox=parent.sandbox, context_window=parent.context_window,
                      price=parent.price if model is parent.model else price_for(model.name))
        res = child.run(prompt)
        if res.stop_reason == "interrupted":
            raise KeyboardInterrupt               # Ctrl-C stops the parent's turn too
        with self.lock:
            parent.count_usage(res.usage)
        if res.is_error:
            return ToolResult(f"the subagent stopped before finishing ({res.stop_reason}): "
                              f"{res.result}", True)
        return ToolResult(res.result or "(the subagent gave no answer)")


@dataclass
class Only:
    """A ToolSource narrowed to some of its tools (a subagent's `tools:` list)."""
    source: Any
    names: set[str]

    def schemas(self) -> list[dict[str, Any]]:
        return [s for s in self.source.schemas() if s["name"] in self.names]

    def is_read_only(self, name: str) -> bool:
        return self.source.is_read_only(name)

    def call(self, name: str, args: dict[str, Any]) -> ToolResult:
        return self.source.call(name, args)
