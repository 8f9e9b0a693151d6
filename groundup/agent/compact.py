"""Compaction: what the model is shown when the whole conversation no longer fits.

Our own small models have a context of 1-2k tokens, and even large ones fill up on a long
session. Every provider reports a prompt that does not fit as a `ContextOverflow` (a
ProviderError); the loop then asks for a smaller *view* of the conversation and tries again,
one level harsher each time:

    level 0   everything
    level 1   old tool results (all but the last two) replaced by a one-line stub
    level 2+  also drop the oldest turns, keeping the system prompt, the first user message
              (the task) and the most recent 16, 8, 4, 2 messages

Design choices:
- The session file and `Agent.messages` keep the full history; only the copy sent to the
  model is compacted. Nothing is lost, and a resumed session with a bigger model sees it all.
- This is the fallback. The loop first asks the model for a summary (summary.py); a model
  that summarises badly (our small ones) or cannot summarise at all gets these stubs and
  truncation, which are deterministic and cannot invent anything.
- A kept tail always starts at a user or assistant message, so no tool result is ever sent
  without the call it answers (the APIs reject that).
"""

from __future__ import annotations

from typing import Any

MAX_LEVEL = 6
KEEP_RECENT_RESULTS = 2


def compact(messages: list[dict[str, Any]], level: int) -> list[dict[str, Any]]:
    """The view of `messages` to send at compaction `level` (0 = unchanged)."""
    if level <= 0:
        return messages
    tool_idx = [i for i, m in enumerate(messages) if m.get("role") == "tool"]
    old = set(tool_idx[:-KEEP_RECENT_RESULTS]) if len(tool_idx) > KEEP_RECENT_RESULTS else set()
    view = []
    for i, m in enumerate(messages):
        if i in old:
            lines = str(m.get("content") or "").count("\n") + 1
            m = {**m, "content": f"[old {m.get('name', 'tool')} output elided ({lines} lines) "
                                 "to fit the context]"}
        view.append(m)
    if level == 1:
        return view
    # the head: the system prompt and the first user message (the task)
    head_end = next((i + 1 for i, m in enumerate(view) if m.get("role") == "user"), 0)
    keep = max(2, 16 >> (level - 2))
    start = max(head_end, len(view) - keep)
    while start < len(view) and view[start].get("role") == "tool":
        start += 1                     # never begin with a result whose call was dropped
    if start >= len(view):
        # the last turn alone is a call and its results: keep it whole
        start = max((i for i in range(head_end, len(view))
                     if view[i].get("role") in ("user", "assistant")), default=head_end)
    return view[:head_end] + view[start:]
