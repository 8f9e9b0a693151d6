"""`openai:NAME` -- any OpenAI-compatible Chat Completions endpoint, streamed over httpx.

Works with api.openai.com and with the servers that copy its API: vLLM, SGLang, Ollama,
llama.cpp's server, LM Studio, and `groundup serve`. The request:

    POST {base_url}/chat/completions
    Authorization: Bearer $OPENAI_API_KEY
    {"model": NAME, "messages": [...], "tools": [{"type": "function", "function": {...}}],
     "stream": true, "stream_options": {"include_usage": true}}

The answer is a stream of `chat.completion.chunk` events. Text arrives as
`choices[0].delta.content`. A tool call arrives in pieces, keyed by its `index` in the turn:
the first piece carries `id` and `function.name`, the following ones carry fragments of
`function.arguments` -- a JSON *string* cut anywhere, even mid-token, so it can only be
parsed once complete. The last chunk carries `finish_reason`; with include_usage, a final
chunk with empty `choices` carries the token usage. Then `data: [DONE]`.

Design choices:
- Tool calls are accumulated by index and emitted, parsed and checked against the tool's
  schema, as soon as they are complete: when a later index starts, or when the stream ends.
- Arguments that are not valid JSON become a ToolCall with `error` set, never an exception.
- The API key is required only for the official endpoint: local servers usually need none.
- Every chunk is checked for the shape above (`http.field`): a server that sends something
  else is an error naming the server and the field, and a stream that ends without
  `[DONE]` or a finish_reason is an error too (it was cut off) -- never an empty success.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator
from urllib.parse import urlparse

from groundup.chat.format import ToolSet
from groundup.chat.types import ToolCall
from groundup.providers.base import (ContextOverflow, Event, Finish, ProviderError, ServerError,
                                     TextDelta, ToolCallEvent, Usage)
from groundup.providers.http import (HTTPOptions, check_base_url, error_message, field,
                                     parse_data, probe, stream_sse)

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def to_openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our message dicts -> Chat Completions messages (arguments as a JSON string)."""
    out = []
    for m in messages:
        role = m["role"]
        if role == "tool":
            out.append({"role": "tool", "tool_call_id": m.get("tool_call_id") or "",
                        "content": str(m.get("content") or "")})
        elif role == "assistant" and m.get("tool_calls"):
            out.append({"role": "assistant", "content": m.get("content") or None,
                        "tool_calls": [{"id": c.get("id") or f"call_{i}", "type": "function",
                                        "function": {"name": c["name"],
                                                     "arguments": json.dumps(c.get("arguments") or {})}}
                                       for i, c in enumerate(m["tool_calls"])]})
        else:
            out.append({"role": role, "content": m.get("content") or ""})
    return out


def to_openai_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function",
             "function": {"name": t["name"], "description": t.get("description", ""),
                          "parameters": t.get("parameters") or {"type": "object", "properties": {}}}}
            for t in tools]


class OpenAIModel:
    compact_prompt = False

    def __init__(self, name: str, base_url: str | None = None, api_key: str | None = None, *,
                 temperature: float | None = None, timeout: float | None = None,
                 max_retries: int | None = None, backoff_base: float = 1.0, **_ignored: Any):
        self.model = name
        self.name = f"openai:{name}"
        self.base_url = check_base_url(base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
                                       "http://localhost:8000/v1")
        self.official = urlparse(self.base_url).netloc.endswith("api.openai.com")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if self.official and not self.api_key:
            raise ProviderError("OPENAI_API_KEY is not set: export your key, or point --base-url "
                                "at an OpenAI-compatible server (vLLM, Ollama, groundup serve...)")
        self.temperature = temperature
        self.opts = HTTPOptions.make(timeout, max_retries, backoff_base)
        self.client = self.opts.client()

    def explain(self, status: int, body: bytes) -> ProviderError:
        """The exception for an HTTP error answer: what happened and what to do."""
        msg = error_message(body)
        low = msg.lower()
        where = f"{self.base_url}/chat/completions"
        if status == 401:
            return ProviderError(f"{where} refused the API key (401: {msg}): check OPENAI_API_KEY"
                                 if self.api_key else f"{where} needs an API key (401: {msg}): set OPENAI_API_KEY")
        if "context" in low and ("length" in low or "window" in low) or "too many tokens" in low:
            return ContextOverflow(f"context overflow: the conversation is longer than {self.model}'s "
                                   f"context ({msg})")
        if status == 404 or "model" in low and ("not found" in low or "does not exist" in low):
            if "model" in low:
                return ProviderError(f"unknown model {self.model!r} at {self.base_url} ({msg})")
            return ProviderError(f"{where} does not exist (404): is the base URL right? It usually "
                                 "ends in /v1, e.g. http://localhost:8000/v1")
        if status == 429:
            return ServerError(f"rate limited by {self.base_url} even after retries (429: {msg})")
        if status >= 500:
            return ServerError(f"{where} failed with HTTP {status} even after retries: {msg}")
        return ProviderError(f"{where} failed with HTTP {status}: {msg}")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def check(self) -> None:
        """Before a session: is the server there, is the key accepted, is the model served?
        (GET /models, which OpenAI, vLLM, SGLang, Ollama, llama.cpp and LM Studio all have.)"""
        status, body = probe(self.client, f"{self.base_url}/models", self.headers())
        if status in (401, 403):
            raise self.explain(401, body)
        if status != 200:
            return                    # no model list here: the first request will tell
        try:
            ids = [m.get("id", "") for m in json.loads(body).get("data", [])]
        except (json.JSONDecodeError, AttributeError, TypeError):
            return
        # Ollama serves "qwen2.5:latest" for "qwen2.5": only reject a name nothing resembles
        if ids and not any(self.model == i or self.model in i for i in ids):
            shown = ", ".join(ids[:8]) + (" ..." if len(ids) > 8 else "")
            raise ProviderError(f"unknown model {self.model!r} at {self.base_url}: it serves {shown}")

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               *, max_tokens: int | None = None) -> Iterator[Event]:
        body: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(messages),
                                "stream": True, "stream_options": {"include_usage": True}}
        if tools:
            body["tools"] = to_openai_tools(tools)
        if max_tokens is not None:
            # the official API renamed it; most compatible servers still read max_tokens
            body["max_completion_tokens" if self.official else "max_tokens"] = max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        headers = {"Accept": "text/event-stream", **self.headers()}
        url = f"{self.base_url}/chat/completions"

        pending: dict[int, dict[str, str]] = {}   # index -> {"id", "name", "arguments"}
        done: set[int] = set()                    # indices already emitted
        toolset = ToolSet(tools) if tools else ToolSet(None)
        finish_reason, usage, complete = "stop", Usage(), False
        for _, data in stream_sse(self.client, url, headers, body, self.opts, self.explain):
            if data.strip() == "[DONE]":
                complete = True
                break
            chunk = parse_data(data, url)
            if isinstance(chunk, dict) and "error" in chunk:   # some servers report errors mid-stream
                raise ServerError(f"{url}: {error_message(data.encode())}")
            u = field(chunk, "usage", dict, url, "chunk")
            if u:
                details = field(u, "prompt_tokens_details", dict, url, "usage", {})
                usage = Usage(field(u, "prompt_tokens", int, url, "usage", 0),
                              field(u, "completion_tokens", int, url, "usage", 0),
                              # servers with a prompt cache (OpenAI, vLLM) say how much hit it
                              cache_read_tokens=field(details, "cached_tokens", int, url,
                                                      "prompt_tokens_details", 0))
            for choice in field(chunk, "choices", list, url, "chunk", []):
                delta = field(choice, "delta", dict, url, "choices[]", {})
                content = field(delta, "content", str, url, "delta")
                if content:
                    yield TextDelta(content)
                for tc in field(delta, "tool_calls", list, url, "delta", []):
                    index = field(tc, "index", int, url, "tool_calls[]", len(pending) + len(done))
                    # calls stream one after another: a new index completes the earlier ones
                    for earlier in sorted(i for i in pending if i < index):
                        done.add(earlier)
                        yield ToolCallEvent(parse_arguments(pending.pop(earlier), toolset))
                    slot = pending.setdefault(index, {"id": "", "name": "", "arguments": ""})
                    fn = field(tc, "function", dict, url, "tool_calls[]", {})
                    slot["id"] = field(tc, "id", str, url, "tool_calls[]") or slot["id"]
                    slot["name"] += field(fn, "name", str, url, "function", "")
                    slot["arguments"] += field(fn, "arguments", str, url, "function", "")
                reason = field(choice, "finish_reason", str, url, "choices[]")
                if reason:
                    finish_reason, complete = reason, True
        if not complete:
            raise ServerError(f"the stream from {url} ended before the answer was complete (no "
                              "finish_reason, no [DONE]): the connection was cut, or the server does "
                              "not stream Chat Completions")
        for index in sorted(pending):
            yield ToolCallEvent(parse_arguments(pending[index], toolset))
        if (pending or done) and finish_reason == "stop":
            finish_reason = "tool_calls"         # some servers say "stop" after tool calls
        yield Finish(finish_reason, usage)


def parse_arguments(slot: dict[str, str], toolset: ToolSet) -> ToolCall:
    """An accumulated call {"id", "name", "arguments": JSON string} -> ToolCall."""
    raw = slot["arguments"]
    kw = {"id": slot["id"]} if slot["id"] else {}
    try:
        args = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as e:
        return ToolCall(name=slot["name"], arguments={}, raw=raw,
                        error=f"arguments of {slot['name']} are not valid JSON ({e.msg} at char {e.pos})", **kw)
    if not isinstance(args, dict):
        return ToolCall(name=slot["name"], arguments={}, raw=raw,
                        error=f"arguments of {slot['name']} must be a JSON object", **kw)
    return ToolCall(name=slot["name"], arguments=args, raw=raw,
                    error=toolset.check(slot["name"], args), **kw)
