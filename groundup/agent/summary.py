"""Summarising compaction: near the end of the model's context, the model writes a summary
of the conversation, and from then on it is shown the summary instead of the old turns.

    /compact [instructions]   on demand (interactive), e.g. `/compact keep the failing test names`
    automatically             when a turn used AUTO_FRACTION of the context window
    on a context overflow     first a summary, then compact.py's stubbing levels

The summary is appended to the conversation as a message of its own,

    {"role": "user", "content": "[The conversation so far was summarised ...]\\n\\n<summary>",
     "summary": true}

and `view()` shows the model the system prompt, the latest summary and what came after it.
`Agent.messages` and the session file keep every message, so nothing is lost: a resumed
session shows the model the same view, and `groundup rewind` still sees every turn.

Design choices:
- The model summarises itself, in one extra call without tools, because only it can tell
  what matters for the task in its own context (Claude Code's /compact does the same).
- A summary is checked before it replaces anything: empty, a tool call instead of text, or
  no shorter than what it replaces means the model summarises badly (our small models do),
  and the loop falls back to compact.py's deterministic stubbing, which cannot invent facts.
  Models with the compact prompt (ours) skip straight to that.
- The context window comes from the settings (`"context_window": 200000`), else from the
  model's name (CONTEXT_WINDOWS, the published sizes), else it is unknown and only an
  overflow or /compact compacts.
"""

from __future__ import annotations

from typing import Any

from groundup.agent.compact import MAX_LEVEL, compact
from groundup.providers.base import ContextOverflow, Model, ProviderError, Usage, collect

AUTO_FRACTION = 0.8          # compact once a turn used this much of the window
MIN_NEW_MESSAGES = 4         # ...and at least this many messages came since the last summary
PREFIX = ("[The conversation so far was summarised to fit the context window. Continue the "
          "work from this summary; ask the user if something you need is missing.]")
REQUEST = """\
Your context is nearly full. Write a summary of the conversation so far that lets you \
continue the work without it. Include:
1. the user's requests, in their words where it matters;
2. what was done: files read and changed (paths), commands run and their outcomes;
3. errors met and how they were solved, and what did not work;
4. the current state, and the next step you were about to take.
Be concrete (paths, names, line numbers) and brief. Answer with the summary only; do not \
call a tool."""

# published context windows, by model-name prefix (the longest matching prefix wins)
CONTEXT_WINDOWS = {"claude-": 200_000, "gpt-4o": 128_000, "gpt-4.1": 1_047_576,
                   "gpt-5": 400_000, "o3": 200_000, "o4-mini": 200_000}


def context_window(model_name: str, setting: int | None = None) -> int | None:
    if setting:
        return setting
    name = model_name.partition(":")[2] or model_name
    prefixes = [p for p in CONTEXT_WINDOWS if name.startswith(p)]
    return CONTEXT_WINDOWS[max(prefixes, key=len)] if prefixes else None


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """About four characters a token: the context use shown until the model reports the
    next turn's real count."""
    return sum(len(str(m.get("content") or "")) for m in messages) // 4


def latest_summary(messages: list[dict[str, Any]]) -> int | None:
    return next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("summary")), None)


def view(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the model is shown: the system prompt, the latest summary, and what follows it."""
    i = latest_summary(messages)
    if i is None:
        return messages
    head = [messages[0]] if messages and messages[0].get("role") == "system" else []
    return head + [{"role": "user", "content": messages[i]["content"]}] + messages[i + 1:]


def summarise(model: Model, messages: list[dict[str, Any]], instructions: str = "",
              max_tokens: int | None = None) -> tuple[str | None, str, Usage]:
    """(the summary message's content or None, why it was refused, usage). The request is
    the current view plus REQUEST; if even that overflows, a stubbed view (compact.py)."""
    shown = view(messages)
    ask = REQUEST + (f"\n\nThe user adds: {instructions.strip()}" if instructions.strip() else "")
    usage = Usage()
    for level in range(MAX_LEVEL + 1):
        try:
            reply, finish = collect(model.stream(compact(shown, level) + [{"role": "user", "content": ask}],
                                                 [], max_tokens=max_tokens))
            usage += finish.usage
            break
        except ContextOverflow:
            continue                   # too long even to summarise: a more stubbed view
        except ProviderError as e:
            return None, f"the model could not summarise ({e})", usage
    else:
        return None, "even a stubbed view is too long to summarise", usage
    text = (reply.get("content") or "").strip()
    replaced = sum(len(str(m.get("content") or "")) for m in shown[1:])
    if reply.get("tool_calls"):
        return None, "the model called a tool instead of summarising", usage
    if not text:
        return None, "the model's summary was empty", usage
    if len(text) >= replaced:
        return None, (f"the summary ({len(text)} characters) is no shorter than what it would "
                      f"replace ({replaced})"), usage
    return f"{PREFIX}\n\n{text}", "", usage
