"""The one protocol every model provider implements, and the events it streams.

A `Model` is anything with a `name` and a `stream(messages, tools)` method that yields, in
order: `TextDelta`s (text as it is generated), `ToolCallEvent`s (each complete, parsed tool
call) and exactly one final `Finish` (why it stopped, and token usage). It is a
typing.Protocol, as in mini-swe-agent: no base class to inherit, any object of that shape
works -- the local engine, an HTTP API, or a script replaying recorded turns.

Messages and tools are the plain dicts described in groundup/chat/types.py.

Three more members every provider has (no probing with getattr): `check()` tests the endpoint
before a session starts (a no-op where there is none), `compact_prompt` says whether the model
wants the agent's short system prompt (our small models), `base_url` is the endpoint or None.

Errors: `ProviderError` says what to do in one line. Two kinds are told apart by type, not by
their text: `ContextOverflow` (the prompt does not fit: the agent compacts and asks again) and
`ServerError` (the server failed -- unreachable, stalled, 5xx after retries, a malformed
answer: exit 1, not the user's input). `within` bounds a stream by a wall-clock deadline, even
while the provider is blocked waiting for the model.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Union

from groundup.chat.types import TextDelta, ToolCall, ToolCallEvent  # noqa: F401 (re-exported)
from groundup.errors import EXIT_FAILURE, UserError


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
    compact_prompt: bool            # wants the agent's short system prompt (our small models)
    base_url: str | None            # the endpoint, for messages and reachability; None if local

    def check(self) -> None:
        """Raise a ProviderError now if the model cannot work (no server, key refused, unknown
        model), so the user hears it before a session starts. A no-op where there is nothing
        to check."""

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               *, max_tokens: int | None = None) -> Iterator[Event]:
        ...


class ProviderError(UserError):
    """A provider could not answer: missing key, unknown model, bad URL... The message says
    what to do (exit 2: the user's setup)."""


class ServerError(ProviderError):
    """The server failed rather than the user's setup: unreachable, stalled past the read
    timeout, 429/5xx after the retries, a stream cut off, an answer of the wrong shape."""
    exit_code = EXIT_FAILURE


class ContextOverflow(ProviderError):
    """The conversation does not fit the model's context; the agent compacts it and retries."""


class DeadlineExceeded(Exception):
    """`within`'s deadline passed while the model was still answering."""


def within(events: Iterator[Event], deadline: float | None) -> Iterator[Event]:
    """`events`, or DeadlineExceeded once time.monotonic() passes `deadline` -- also while the
    provider is blocked (a server that never answers, a long local generation). The stream is
    consumed by a helper thread; we wait on its queue with a timeout. When we give up, the
    helper stops at its next event (a local model stops generating); one blocked on a socket
    ends at its read timeout, and being a daemon thread it never holds up an exit."""
    if deadline is None:
        yield from events
        return
    q: queue.Queue = queue.Queue()
    stop = threading.Event()
    DONE = object()

    def pump() -> None:
        try:
            for ev in events:
                if stop.is_set():
                    break
                q.put(ev)
        except BaseException as e:  # noqa: BLE001 -- handed to the consumer, which re-raises it
            q.put(e)
        finally:
            close = getattr(events, "close", None)   # a generator: run its cleanup here, in its thread
            if callable(close):
                close()
            q.put(DONE)

    threading.Thread(target=pump, name="model-stream", daemon=True).start()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded()
            try:
                item = q.get(timeout=left)
            except queue.Empty:
                raise DeadlineExceeded() from None
            if item is DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


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
