"""The conversation shape that every layer above the engine shares.

A message is a plain dict -- JSON-serializable, so a session file is simply one message per
line and a trajectory for fine-tuning is the same thing:

    {"role": "system" | "user", "content": str}
    {"role": "assistant", "content": str,
     "tool_calls": [{"id": str, "name": str, "arguments": {...}}]}     # tool_calls optional
    {"role": "tool", "tool_call_id": str, "name": str, "content": str}

A tool is described to the model by {"name": str, "description": str, "parameters": <JSON
schema of its arguments>} -- the shape OpenAI's and Anthropic's APIs both derive from.

`ToolCall` is the parsed form of one call. A malformed call (bad JSON, unknown tool, wrong
argument types) still becomes a ToolCall, with `error` set: the agent shows that error to the
model as the tool's result so it can correct itself, instead of crashing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:16]


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=new_call_id)
    error: str | None = None   # why the call is malformed; None when it is well-formed
    raw: str | None = None     # the text the model emitted for this call, when known

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "name": self.name, "arguments": self.arguments}
        if self.error is not None:
            d["error"] = self.error
        if self.raw is not None:
            d["raw"] = self.raw
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ToolCall":
        return cls(name=d["name"], arguments=d.get("arguments") or {},
                   id=d.get("id") or new_call_id(), error=d.get("error"), raw=d.get("raw"))


# The two streaming events that the chat layer's parsers produce. They live here (not in
# providers/) because the chat layer sits below the providers and must not import them;
# groundup.providers.base re-exports them, so `providers.TextDelta is chat.types.TextDelta`.
@dataclass
class TextDelta:
    text: str


@dataclass
class ToolCallEvent:
    call: ToolCall
