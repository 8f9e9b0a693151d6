"""The agent loop: run → step → query → execute, until the model stops calling tools.

This is the whole of what makes a language model a coding agent. Read it top to bottom:

    run(task)      add the system prompt (once) and the task; step until an exception ends it
    step()         check the limits; query the model; no tool call → Submitted (unless a
                   Stop hook sends it back); else execute
    query()        stream one assistant turn (summarising or compacting the view near the
                   model's context, see summary.py), appending it to the messages
    execute(calls) run each tool call (run_tool: hooks, checkpoint, the toolbox), appending
                   one tool message per call

Design choices (after mini-swe-agent):
- Control flow by small exceptions: `Submitted` (the model answered without a tool call),
  `LimitsExceeded` (steps, wall time, tokens, or too many malformed calls in a row). `run`
  turns each into an `AgentResult` with a `stop_reason`; only `Submitted` is a success.
- The message list *is* the trajectory; each message is appended to the session file the
  moment it exists (see session.py), so a killed run resumes with everything it had.
- A malformed tool call (`ToolCall.error`, set by the chat-format parser) is answered with a
  tool error, like any failed call: the model sees what was wrong and can retry. Only a run of
  `max_format_errors` of them in a row stops the agent, since by then it is stuck.
- Optionally (`max_repeats`, off by default; evaluation of small models turns it on) a run
  stops when the model has made the same call and got the same result that many times: it is
  going in circles, and every further step costs time and tokens for nothing (OpenHands'
  stuck detection is the same idea).
- Read-only calls in one turn (read_file, grep, glob, list_dir) run in parallel threads; any
  turn with a write or a command runs in order, so effects happen as the model wrote them.
- Ctrl-C (KeyboardInterrupt) cancels the turn: the running command's process group is
  killed (shell.py), unanswered calls get an "interrupted" result so the history stays valid
  for every API, and `run` returns with stop_reason "interrupted". The session goes on.
- Near the model's context window (or on a ContextOverflow from the provider), `query`
  asks the model for a summary that replaces the old turns in what it is shown next
  (summary.py); a model that summarises badly gets a compacted *view* instead -- old tool
  output stubbed, then old turns dropped (compact.py). The messages and the session file
  keep everything.
- The wall-time limit (`max_seconds`) also bounds the wait for the model: a server that never
  answers stops the run at the deadline (providers.base.within), not at its read timeout.
- Events (`on_event`) are plain dicts, the same ones `--output-format stream-json` prints.
- The user's hooks (hooks.py) run at four visible points: `run` (SessionStart,
  UserPromptSubmit), `step` (Stop), and `run_tool`, which wraps every tool call in
  PreToolUse and PostToolUse. A hook can refuse a call or send the agent back to work; it
  cannot grant what the permission system denies.
- `run_tool` is also where checkpoints (checkpoints.py) snapshot a file before the turn's
  first write to it, so `groundup rewind` can undo the turn.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from groundup.agent.checkpoints import Checkpoints, turn_starts
from groundup.agent.compact import MAX_LEVEL, compact
from groundup.agent.cost import Price, cost_usd
from groundup.agent.hooks import Hooks, Outcome
from groundup.agent.permissions import Permissions
from groundup.agent.prompt import system_prompt
from groundup.agent.sandbox import Sandbox
from groundup.agent.session import Session, interrupted_result
from groundup.agent.summary import (AUTO_FRACTION, MIN_NEW_MESSAGES, estimate_tokens,
                                    latest_summary, summarise, view)
from groundup.agent.tools import CORE_TOOLS, Toolbox, ToolResult, ToolSource
from groundup.chat.types import ToolCall
from groundup.errors import Terminated
from groundup.providers.base import (ContextOverflow, DeadlineExceeded, Finish, Model,
                                     ProviderError, TextDelta, ToolCallEvent, Usage, within)


class Submitted(Exception):
    """The model answered without calling a tool: the task is done."""


class LimitsExceeded(Exception):
    """A limit stopped the run; args[0] is the stop reason, args[1] the explanation."""


class PromptBlocked(Exception):
    """A UserPromptSubmit hook refused the prompt; args[0] says why (for the user)."""


@dataclass
class AgentResult:
    result: str
    messages: list[dict[str, Any]]
    num_steps: int
    usage: Usage
    is_error: bool
    stop_reason: str     # "end_turn" | "max_steps" | "max_seconds" | "max_tokens" |
                         # "format_errors" | "repeats" | "interrupted" | "terminated" | "error" |
                         # "blocked"
    session_id: str | None = None
    session_path: Path | None = None
    seconds: float = 0.0
    cost_usd: float | None = None        # None: no price known for the model (cost.py)

    def to_json(self) -> dict[str, Any]:
        """The object `--output-format json` prints."""
        return {"result": self.result, "session_id": self.session_id,
                "num_steps": self.num_steps, "usage": self.usage.to_dict(),
                "cost_usd": self.cost_usd, "is_error": self.is_error,
                "stop_reason": self.stop_reason}


@dataclass
class Agent:
    model: Model
    root: Path
    permission_mode: str = "yolo"
    max_steps: int | None = 12
    max_seconds: float | None = None
    session_dir: Path | None = None
    compact_prompt: bool | None = None      # None: ask the model (`model.compact_prompt`)
    on_event: Callable[[dict[str, Any]], None] | None = None
    token_budget: int | None = None         # prompt + completion tokens, summed over steps
    permissions: Permissions | None = None  # overrides permission_mode when given
    extra_dirs: tuple = ()
    messages: list[dict[str, Any]] = field(default_factory=list)
    session: Session | None = None          # resume into this session file
    max_format_errors: int = 3
    max_repeats: int | None = None          # the same call with the same result this often stops the run
    max_output_tokens: int | None = None    # per model turn
    tool_sources: tuple[ToolSource, ...] = ()  # tools beyond the core set (tools.ToolSource)
    hooks: Hooks | None = None              # the user's commands around prompts and tools
    checkpoints: Checkpoints | None = None  # file snapshots for rewind (needs a session)
    tools: tuple[str, ...] | None = None    # the core tools offered (None: all, or CORE_TOOLS
                                            # with the compact prompt); subagents take fewer
    instructions: str | None = None         # replaces the system prompt's intro (a subagent's)
    sandbox: Sandbox | None = None          # bash runs under bubblewrap (sandbox.py)
    context_window: int | None = None       # tokens; near it the model summarises (summary.py)
    price: Price | None = None              # USD per million tokens (cost.py); None: unknown

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if self.permissions is None:
            self.permissions = Permissions(mode=self.permission_mode)
        if self.compact_prompt is None:
            self.compact_prompt = bool(self.model.compact_prompt)
        # compact mode is for our own small models: the short prompt and the core tools they
        # were trained with (tools.CORE_TOOLS)
        self.toolbox = Toolbox(self.root, self.extra_dirs, self.permissions,
                               on_todos=lambda todos: self.emit({"type": "todos", "todos": todos}),
                               tools=self.tools if self.tools is not None
                               else CORE_TOOLS if self.compact_prompt else None,
                               sources=self.tool_sources)
        self.toolbox.sandbox = self.sandbox
        if self.session is None and self.session_dir is not None:
            self.session = Session.create(self.session_dir)
        self.total_usage = Usage()
        self.compact_level = 0                 # how hard the model's view is compacted
        self.context_used = 0                  # tokens the last turn used (prompt + answer)
        self.summary_failed = False            # the model summarised badly: stubs from now on
        if self.hooks is None:
            self.hooks = Hooks([], self.root)
        self.session_started = False
        self.emit_lock = threading.Lock()
        self.cancelled = threading.Event()     # Ctrl-C during parallel tool calls
        self.turn = len(turn_starts(self.messages))   # the user's turns so far (checkpoints.py)

    # ------------------------------------------------------------ the loop

    def run(self, task: str) -> AgentResult:
        self.steps, self.format_errors, self.usage = 0, 0, Usage()
        self.repeats: Counter[tuple[str, str, str]] = Counter()
        self.started = time.monotonic()
        self.toolbox.deadline = None if self.max_seconds is None else self.started + self.max_seconds
        self.stop_hook_active = False
        self.cancelled.clear()
        try:
            self.add_prompt(task)
            while True:
                self.step()
        except Submitted as e:
            result, stop, is_error = str(e.args[0]), "end_turn", False
        except LimitsExceeded as e:
            stop, result, is_error = e.args[0], e.args[1], True
        except ProviderError as e:
            result, stop, is_error = f"model error: {e}", "error", True
        except PromptBlocked as e:
            result, stop, is_error = str(e.args[0]), "blocked", True
        except KeyboardInterrupt as e:
            self.answer_pending()
            result, stop, is_error = (("terminated (SIGTERM)", "terminated", True)
                                      if isinstance(e, Terminated) else
                                      ("interrupted by the user", "interrupted", True))
        res = AgentResult(result, self.messages, self.steps, self.usage, is_error, stop,
                          self.session.id if self.session else None,
                          self.session.path if self.session else None,
                          time.monotonic() - self.started, cost_usd(self.usage, self.price))
        self.emit({"type": "result", **res.to_json()})
        return res

    def add_prompt(self, task: str) -> None:
        """The system prompt (once) and the user's message, with what the hooks add to it."""
        context: list[str] = []
        if not self.session_started:
            self.session_started = True
            source = "resume" if self.messages else "startup"
            context += self.hook("SessionStart", source=source).context
        if not self.messages:
            self.add({"role": "system", "content": system_prompt(
                self.root, self.toolbox, self.compact_prompt, self.instructions)})
        submitted = self.hook("UserPromptSubmit", prompt=task)
        if submitted.blocked:
            raise PromptBlocked(f"a UserPromptSubmit hook blocked the prompt: {submitted.reason}")
        context += submitted.context
        self.add({"role": "user", "content": "\n\n".join([task, *context])})
        self.turn = len(turn_starts(self.messages))

    def step(self) -> None:
        self.check_limits()
        message = self.query()
        calls = message.get("tool_calls") or []
        if calls:
            self.execute([ToolCall.from_dict(c) for c in calls])
            return
        stop = self.hook("Stop", stop_hook_active=self.stop_hook_active)
        if stop.blocked:
            # a Stop hook (tests still failing, say) sends the agent back to work
            self.stop_hook_active = True
            self.add({"role": "user", "content": f"[Stop hook] {stop.reason}", "hook": "Stop"})
            return
        raise Submitted(message.get("content") or "")

    def check_limits(self) -> None:
        if self.max_steps is not None and self.steps >= self.max_steps:
            raise LimitsExceeded("max_steps", f"stopped: reached the limit of {self.max_steps} "
                                              "steps before the task was done")
        if self.max_seconds is not None and time.monotonic() - self.started > self.max_seconds:
            raise LimitsExceeded("max_seconds", f"stopped: the run took longer than "
                                                f"{self.max_seconds:g} seconds")
        used = self.usage.prompt_tokens + self.usage.completion_tokens
        if self.token_budget is not None and used >= self.token_budget:
            raise LimitsExceeded("max_tokens", f"stopped: used {used} tokens, over the budget "
                                               f"of {self.token_budget}")

    def query(self) -> dict[str, Any]:
        self.steps += 1
        if self.near_context_limit():
            self.summarise(reason="auto")
        summarised = False
        while True:
            try:
                text, calls, finish = self.stream(compact(view(self.messages), self.compact_level))
                break
            except ContextOverflow:
                # too long for the model: a summary first (summary.py), then smaller and
                # smaller stubbed views (compact.py)
                if self.compact_level >= MAX_LEVEL:
                    raise
                if not summarised:
                    summarised = True
                    if self.summarise(reason="overflow"):
                        continue
                self.compact_level += 1
                self.emit({"type": "compact", "level": self.compact_level})
        self.count_usage(finish.usage)
        self.context_used = finish.usage.prompt_tokens + finish.usage.completion_tokens
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
        if calls:
            message["tool_calls"] = [c.to_dict() for c in calls]
        self.add(message)
        self.emit({"type": "assistant", "content": message["content"],
                   "tool_calls": message.get("tool_calls", []), "finish_reason": finish.reason,
                   "usage": finish.usage.to_dict()})
        return message

    def near_context_limit(self) -> bool:
        """Time for an automatic summary? Not for a model that already summarised badly:
        it has the stubbed view now, and another try would cost a call per step."""
        if self.compact_prompt or not self.context_window or self.summary_failed:
            return False
        since = len(self.messages) - (latest_summary(self.messages) or 0)
        return self.context_used >= AUTO_FRACTION * self.context_window and since >= MIN_NEW_MESSAGES

    def summarise(self, instructions: str = "", reason: str = "manual") -> bool:
        """Replace the old turns in the model's view by its own summary (summary.py); a
        model that summarises badly gets the stubbed view instead (compact.py)."""
        text, problem = None, "models with the compact prompt are not asked to summarise"
        if not self.compact_prompt:
            text, problem, usage = summarise(self.model, self.messages, instructions,
                                             self.max_output_tokens)
            self.count_usage(usage)
        if text is None:
            self.summary_failed = True
            self.compact_level = max(self.compact_level, 1)
            self.emit({"type": "compact", "level": self.compact_level, "reason": reason,
                       "summary": None, "problem": problem})
            return False
        replaced = len(view(self.messages))
        self.add({"role": "user", "content": text, "summary": True})
        self.context_used = estimate_tokens(view(self.messages))
        self.compact_level = 0
        self.emit({"type": "compact", "level": 0, "reason": reason, "summary": text,
                   "replaced": replaced})
        return True

    def count_usage(self, usage: Usage) -> None:
        self.usage += usage
        self.total_usage += usage

    def stream(self, view: list[dict[str, Any]]) -> tuple[list[str], list[ToolCall], Finish]:
        """One model turn: text deltas are shown as they come; tool calls arrive parsed."""
        text: list[str] = []
        calls: list[ToolCall] = []
        finish = Finish("stop")
        # the wall-time limit holds while the model is thinking too (a stalled server, a slow
        # local generation): `within` gives up at the deadline even if the stream is blocked
        try:
            for ev in within(self.model.stream(view, self.toolbox.schemas(),
                                               max_tokens=self.max_output_tokens), self.toolbox.deadline):
                if isinstance(ev, TextDelta):
                    text.append(ev.text)
                    self.emit({"type": "text", "text": ev.text})
                elif isinstance(ev, ToolCallEvent):
                    calls.append(ev.call)
                elif isinstance(ev, Finish):
                    finish = ev
        except DeadlineExceeded:
            raise LimitsExceeded("max_seconds", f"stopped: the run took longer than {self.max_seconds:g} "
                                                "seconds (while waiting for the model)") from None
        return text, calls, finish

    def execute(self, calls: list[ToolCall]) -> None:
        for call in calls:
            self.emit({"type": "tool_call", **call.to_dict()})
        if len(calls) > 1 and all(self.toolbox.is_read_only(c.name) and not c.error for c in calls):
            with ThreadPoolExecutor(max_workers=min(8, len(calls))) as pool:
                try:
                    results = list(pool.map(self.run_tool, calls))
                except KeyboardInterrupt:
                    # Ctrl-C reaches only this thread: subagents running in the pool's
                    # threads stop at their next event (subagents.py)
                    self.cancelled.set()
                    raise
            for call, result in zip(calls, results):
                self.add_result(call, result)
        else:
            results = []
            for call in calls:
                results.append(self.run_tool(call))
                self.add_result(call, results[-1])
        self.check_repeats(calls, results)
        if all(c.error or c.name not in self.toolbox_names() for c in calls):
            self.format_errors += 1
            if self.format_errors >= self.max_format_errors:
                raise LimitsExceeded("format_errors", f"stopped: {self.format_errors} malformed "
                                                      "tool calls in a row")
        else:
            self.format_errors = 0

    def run_tool(self, call: ToolCall) -> ToolResult:
        """One tool call, between the PreToolUse and PostToolUse hooks."""
        if call.error:
            return self.toolbox.execute(call)      # never ran: no hook sees a malformed call
        pre = self.hook("PreToolUse", call.name, tool_name=call.name, tool_input=call.arguments)
        if pre.blocked:
            return ToolResult(f"blocked by a PreToolUse hook: {pre.reason}", True)
        if self.checkpoints is not None and self.session is not None:
            self.checkpoints.before(call, self.session.id, self.turn)
        result = self.toolbox.execute(call)
        post = self.hook("PostToolUse", call.name, tool_name=call.name, tool_input=call.arguments,
                         tool_response={"content": result.content, "is_error": result.is_error})
        if post.blocked:
            result = ToolResult(f"{result.content}\n[PostToolUse hook] {post.reason}",
                                result.is_error, result.display)
        return result

    def check_repeats(self, calls: list[ToolCall], results: list[ToolResult]) -> None:
        if not self.max_repeats:
            return
        for call, result in zip(calls, results):
            key = (call.name, call.error or json.dumps(call.arguments, sort_keys=True),
                   result.content)
            self.repeats[key] += 1
            if self.repeats[key] >= self.max_repeats:
                raise LimitsExceeded("repeats", f"stopped: the same {call.name} call returned the "
                                                f"same result {self.repeats[key]} times")

    # ------------------------------------------------------------ plumbing

    def hook(self, event: str, tool: str | None = None, **fields: Any) -> Outcome:
        """Run the hooks of `event` (hooks.py); every run is an event the user sees."""
        payload = {"session_id": self.session.id if self.session else None,
                   "transcript_path": str(self.session.path) if self.session else None,
                   "cwd": str(self.root), **fields}
        return self.hooks.run(event, payload, tool, self.emit)

    def toolbox_names(self) -> set[str]:
        return {s["name"] for s in self.toolbox.schemas()}

    def add_result(self, call: ToolCall, result: ToolResult) -> None:
        self.add({"role": "tool", "tool_call_id": call.id, "name": call.name,
                  "content": result.content})
        event = {"type": "tool_result", "tool_call_id": call.id, "name": call.name,
                 "content": result.content, "is_error": result.is_error}
        if result.display is not None:
            event["display"] = result.display
        self.emit(event)

    def add(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        if self.session is not None:
            self.session.append(message)

    def answer_pending(self) -> None:
        """After an interrupt, answer the last turn's calls that have no result yet."""
        last = next((i for i in range(len(self.messages) - 1, -1, -1)
                     if self.messages[i].get("role") == "assistant"), None)
        if last is None:
            return
        answered = {m.get("tool_call_id") for m in self.messages[last + 1:]}
        for c in self.messages[last].get("tool_calls") or []:
            if c.get("id") not in answered:
                self.add(interrupted_result(c))

    def emit(self, event: dict[str, Any]) -> None:
        if self.on_event is not None:
            with self.emit_lock:           # parallel subagents report from their threads
                self.on_event(event)
