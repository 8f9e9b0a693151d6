"""`anthropic:NAME` -- the Anthropic Messages API, streamed over httpx.

The request:

    POST {base_url}/v1/messages
    x-api-key: $ANTHROPIC_API_KEY        anthropic-version: 2023-06-01
    {"model": NAME, "max_tokens": N, "system": "...", "messages": [...],
     "tools": [{"name", "description", "input_schema"}], "stream": true}

The answer is a sequence of named SSE events:

    message_start        {"message": {..., "usage": {"input_tokens": 472, ...}}}
    content_block_start  {"index": 0, "content_block": {"type": "text", "text": ""}}
    content_block_delta  {"index": 0, "delta": {"type": "text_delta", "text": "Okay"}}   (many)
    content_block_stop   {"index": 0}
    content_block_start  {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_..",
                                                        "name": "read_file", "input": {}}}
    content_block_delta  {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\\"pa"}}
    content_block_stop   {"index": 1}
    message_delta        {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 89}}
    message_stop
    (ping events anywhere; an `error` event if the API fails mid-stream)

Design choices:
- Differences from the OpenAI shape are handled here, in the conversion: system messages go
  to the top-level `system`; an assistant turn is a list of content blocks (text, then
  tool_use blocks with `input` as an object); tool results are `tool_result` blocks inside a
  *user* turn, and consecutive same-role turns are merged (the API wants user/assistant to
  alternate).
- A tool call is emitted at its content_block_stop, as soon as its JSON input is complete.
- `max_tokens` is required by this API; the default is generous for an agent's turn.
- Prompt caching is on: `cache_control` marks the system prompt and the newest message
  (mark_cache_breakpoints), and usage reports cache reads and writes separately, since they
  are billed at 0.1x and 1.25x the input price (agent/cost.py).
- Every event is checked for the shape above (`http.field`); a stream that ends without
  `message_stop` or a stop_reason was cut off, and is an error, not an empty answer.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

from groundup.chat.format import ToolSet
from groundup.chat.types import ToolCall, new_call_id
from groundup.providers.base import (ContextOverflow, Event, Finish, ProviderError, ServerError,
                                     TextDelta, ToolCallEvent, Usage)
from groundup.providers.http import (HTTPOptions, check_base_url, error_message, field, malformed,
                                     parse_data, probe, stream_sse)

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls",
                "max_tokens": "length", "pause_turn": "stop", "refusal": "stop"}


def to_anthropic(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Our message dicts -> (system prompt, Messages API turns of content blocks)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks         # merge: roles must alternate
        else:
            turns.append({"role": role, "content": blocks})

    for m in messages:
        role, content = m["role"], str(m.get("content") or "")
        if role == "system":
            system.append(content)
        elif role == "user":
            add("user", [{"type": "text", "text": content}] if content else [])
        elif role == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content.strip() else []
            blocks += [{"type": "tool_use", "id": c.get("id") or f"toolu_{i}", "name": c["name"],
                        "input": c.get("arguments") or {}} for i, c in enumerate(m.get("tool_calls") or [])]
            add("assistant", blocks)
        elif role == "tool":
            add("user", [{"type": "tool_result", "tool_use_id": m.get("tool_call_id") or "",
                          "content": content}])
    return "\n\n".join(system), turns


class AnthropicModel:
    compact_prompt = False

    def __init__(self, name: str, base_url: str | None = None, api_key: str | None = None, *,
                 max_tokens: int = 8192, temperature: float | None = None, timeout: float | None = None,
                 max_retries: int | None = None, backoff_base: float = 1.0, **_ignored: Any):
        self.model = name
        self.name = f"anthropic:{name}"
        base = check_base_url(base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL)
        self.base_url = base
        self.url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        self.api_key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not self.api_key:
            raise ProviderError("ANTHROPIC_API_KEY is not set: export your Anthropic API key")
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.opts = HTTPOptions.make(timeout, max_retries, backoff_base)
        self.client = self.opts.client()

    def explain(self, status: int, body: bytes) -> ProviderError:
        """The exception for an HTTP error answer: what happened and what to do."""
        msg = error_message(body)
        low = msg.lower()
        if status == 401:
            return ProviderError(f"{self.url} refused the API key (401: {msg}): check ANTHROPIC_API_KEY")
        if "prompt is too long" in low or "context" in low and "exceed" in low:
            return ContextOverflow(f"context overflow: the conversation is longer than {self.model}'s "
                                   f"context ({msg})")
        if status == 404:
            if "model" in low:
                return ProviderError(f"unknown model {self.model!r} ({msg})")
            return ProviderError(f"{self.url} does not exist (404): is the base URL right "
                                 "(e.g. https://api.anthropic.com)?")
        if status in (429, 529):
            return ServerError(f"{self.url} is rate limited or overloaded even after retries ({status}: {msg})")
        if status >= 500:
            return ServerError(f"{self.url} failed with HTTP {status} even after retries: {msg}")
        return ProviderError(f"{self.url} failed with HTTP {status}: {msg}")

    def check(self) -> None:
        """Before a session: reachable, key accepted, model known (GET /v1/models/{model})."""
        headers = {"x-api-key": self.api_key or "", "anthropic-version": API_VERSION}
        status, body = probe(self.client, self.url.removesuffix("/messages") + f"/models/{self.model}", headers)
        if status in (401, 403):
            raise self.explain(401, body)
        if status == 404 and b"not_found_error" in body:
            raise ProviderError(f"unknown model {self.model!r} ({error_message(body)})")

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               *, max_tokens: int | None = None) -> Iterator[Event]:
        system, turns = to_anthropic(messages)
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens or self.max_tokens,
                                "messages": turns, "stream": True}
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [{"name": t["name"], "description": t.get("description", ""),
                              "input_schema": t.get("parameters") or {"type": "object", "properties": {}}}
                             for t in tools]
        if self.temperature is not None:
            body["temperature"] = self.temperature
        mark_cache_breakpoints(body)
        headers = {"x-api-key": self.api_key or "", "anthropic-version": API_VERSION,
                   "accept": "text/event-stream"}

        toolset = ToolSet(tools) if tools else ToolSet(None)
        blocks: dict[int, dict[str, Any]] = {}    # index -> the block being streamed
        usage, reason = Usage(), "stop"
        url, complete = self.url, False
        for event, data in stream_sse(self.client, url, headers, body, self.opts, self.explain):
            ev = parse_data(data, url)
            kind = field(ev, "type", str, url, "event") or event
            if kind == "message_start":
                u = field(field(ev, "message", dict, url, kind, {}), "usage", dict, url, "message", {})
                usage.prompt_tokens = sum(field(u, k, int, url, "usage", 0) for k in (
                    "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
                usage.cache_read_tokens = field(u, "cache_read_input_tokens", int, url, "usage", 0)
                usage.cache_write_tokens = field(u, "cache_creation_input_tokens", int, url, "usage", 0)
                usage.completion_tokens = field(u, "output_tokens", int, url, "usage", 0)
            elif kind == "content_block_start":
                block = dict(field(ev, "content_block", dict, url, kind) or {})
                index = field(ev, "index", int, url, kind)
                if not block or index is None:
                    raise malformed(url, f"{kind} without content_block or index")
                block["partial_json"] = ""
                blocks[index] = block
                if block.get("type") == "text" and block.get("text"):
                    yield TextDelta(str(block["text"]))
            elif kind == "content_block_delta":
                delta = field(ev, "delta", dict, url, kind, {})
                block = blocks.get(field(ev, "index", int, url, kind), {})
                text = field(delta, "text", str, url, "delta")
                if delta.get("type") == "text_delta" and text:
                    yield TextDelta(text)
                elif delta.get("type") == "input_json_delta":
                    block["partial_json"] = block.get("partial_json", "") + field(
                        delta, "partial_json", str, url, "delta", "")
            elif kind == "content_block_stop":
                block = blocks.pop(field(ev, "index", int, url, kind), {})
                if block.get("type") == "tool_use":
                    yield ToolCallEvent(tool_use_call(block, toolset))
            elif kind == "message_delta":
                stop = field(field(ev, "delta", dict, url, kind, {}), "stop_reason", str, url, "delta")
                if stop:
                    reason, complete = STOP_REASONS.get(stop, stop), True
                out = field(field(ev, "usage", dict, url, kind, {}), "output_tokens", int, url, "usage")
                if out is not None:
                    usage.completion_tokens = out      # cumulative, not a delta
            elif kind == "error":
                err = field(ev, "error", dict, url, kind, {})
                raise ServerError(f"{url} failed mid-stream: {err.get('type', 'error')}: "
                                  f"{err.get('message', '')}")
            elif kind == "message_stop":
                complete = True
                break
        if not complete:
            raise ServerError(f"the stream from {url} ended before the answer was complete (no "
                              "message_stop, no stop_reason): the connection was cut, or the server "
                              "does not stream the Messages API")
        yield Finish(reason, usage)


CACHE = {"type": "ephemeral"}


def mark_cache_breakpoints(body: dict[str, Any]) -> None:
    """Prompt caching: mark where the cacheable prefix ends. The API caches everything up to
    a marked block (tools, then system, then messages, in that order) for five minutes;
    a later request that starts with the same prefix reads it at a tenth of the price. Two
    breakpoints: the end of the system prompt (tools + system, the same in every request),
    and the last block of the conversation, so each turn reads the previous turn's prefix
    from the cache and writes only what is new."""
    if isinstance(body.get("system"), str):
        body["system"] = [{"type": "text", "text": body["system"], "cache_control": CACHE}]
    elif body.get("tools"):
        body["tools"][-1]["cache_control"] = CACHE      # no system prompt: end at the tools
    if body["messages"] and body["messages"][-1]["content"]:
        body["messages"][-1]["content"][-1]["cache_control"] = CACHE


def tool_use_call(block: dict[str, Any], toolset: ToolSet) -> ToolCall:
    raw = block.get("partial_json") or ""
    try:
        args = json.loads(raw) if raw.strip() else (block.get("input") or {})
    except json.JSONDecodeError as e:
        return ToolCall(name=block.get("name", ""), arguments={}, id=block.get("id") or new_call_id(),
                        raw=raw, error=f"tool input is not valid JSON ({e.msg})")
    if not isinstance(args, dict):
        return ToolCall(name=block.get("name", ""), arguments={}, id=block.get("id") or new_call_id(), raw=raw,
                        error="tool input must be a JSON object")
    return ToolCall(name=block.get("name", ""), arguments=args, id=block.get("id") or new_call_id(),
                    raw=raw, error=toolset.check(block.get("name", ""), args))
