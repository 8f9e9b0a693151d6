"""The one protocol every model provider implements, and the events it streams.

A `Model` is anything with a `name` and a `stream(messages, tools)` method that yields, in
order: `TextDelta`s (text as it is generated), `ToolCallEvent`s (each complete, parsed tool
call) and exactly one final `Finish` (why it stopped, and token usage). It is a
typing.Protocol, as in mini-swe-agent: no base class to inherit, any object of that shape
works -- the local engine, an HTTP API, or a script replaying recorded turns.

Messages and tools are the plain dicts described in groundup/chat/types.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Union

from groundup.chat.types import TextDelta, ToolCall, ToolCallEvent  # noqa: F401 (re-exported)
from groundup.errors import UserError


@dataclass
class Usage:
    prompt_tokens: int = 0           # every prompt token, cached or not
    completion_tokens: int = 0
    cache_read_tokens: int = 0       # of prompt_tokens: served from the provider's prompt cache
    cache_write_tokens: int = 0      # of prompt_tokens: written to it (Anthropic bills these)

    def __iadd__(self, other: "Usage") -> "Usage":
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens
        return self

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cache_read_tokens": self.cache_read_tokens,
                "cache_write_tokens": self.cache_write_tokens}


@dataclass
class Finish:
    reason: str                      # "stop" | "tool_calls" | "length"
    usage: Usage = field(default_factory=Usage)
    # a local model also says which ids it was shown and which it produced (its stop id
    # included): reinforcement learning trains on exactly those, not on a re-tokenised copy
    prompt_ids: list[int] | None = None
    token_ids: list[int] | None = None


Event = Union[TextDelta, ToolCallEvent, Finish]


class Model(Protocol):
    name: str

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               *, max_tokens: int | None = None) -> Iterator[Event]:
        ...


class ProviderError(UserError):
    """A provider could not answer: missing key, unreachable endpoint, unknown model,
    context overflow... The message says what to do."""


def collect(events: Iterator[Event]) -> tuple[dict[str, Any], Finish]:
    """Drain a stream into one assistant message dict and its Finish event."""
    text: list[str] = []
    calls: list[ToolCall] = []
    finish = Finish("stop")
    for ev in events:
        if isinstance(ev, TextDelta):
            text.append(ev.text)
        elif isinstance(ev, ToolCallEvent):
            calls.append(ev.call)
        elif isinstance(ev, Finish):
            finish = ev
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
    if calls:
        msg["tool_calls"] = [c.to_dict() for c in calls]
    return msg, finish
