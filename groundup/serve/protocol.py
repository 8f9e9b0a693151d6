"""The OpenAI wire format: request bodies checked and converted, responses and chunks built.

    POST /v1/chat/completions  {"model", "messages", "tools"?, "tool_choice"?, "stream"?,
                                "stream_options"?: {"include_usage"}, "max_tokens" |
                                "max_completion_tokens", "temperature", "top_p", "seed", "stop", "n"}
    -> {"id": "chatcmpl-..", "object": "chat.completion", "created", "model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content", "tool_calls"?},
                     "finish_reason": "stop" | "length" | "tool_calls"}],
        "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}
    streamed: `data: {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {...}}]}`
    events, the last choice with its finish_reason, then (include_usage) a chunk with
    `"choices": []` and the usage, then `data: [DONE]`.

A tool call on the wire is {"id", "type": "function", "function": {"name", "arguments": JSON
*string*}}; streamed, its first delta carries index, id, type and name (arguments ""), the
next one the arguments -- the shape the official client and our own provider accumulate.

Design choices:
- Every check raises `APIError(status, message, param, code)`, which the app turns into
  OpenAI's error body {"error": {"message", "type", "param", "code"}}. Messages say what to
  fix; a client mistake is never a 500.
- Unknown top-level fields are ignored (as vLLM does: clients send `user`, `metadata`...);
  fields we know but cannot honour (n > 1, logprobs, penalties) are refused, not ignored.
- Messages become the plain dicts of groundup/chat/types.py, tools the {"name",
  "description", "parameters"} shape, so the chat layer renders them as it does for the agent.
- `tool_choice`: "auto" (default) and "none" (tools not shown to the model) mean what they
  say; "required" and a named function only narrow the tools the model is shown -- nothing
  forces the model's output (vLLM does that with guided decoding), so it may still answer in
  text. Said here rather than pretended.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from groundup.chat.types import ToolCall

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
JSON_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOP = 4


class APIError(Exception):
    TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
             405: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error",
             429: "rate_limit_error", 503: "service_unavailable"}

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.TYPES.get(self.status, "server_error"),
                          "param": self.param, "code": self.code}}


def bad(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param, code or "invalid_request")


@dataclass
class Request:
    """One checked request, for either endpoint."""
    model: str
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None           # None: what is left of the context
    temperature: float | None = None        # None: the server's default
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    messages: list[dict[str, Any]] = field(default_factory=list)   # chat
    tools: list[dict[str, Any]] = field(default_factory=list)      # chat: the tools the model is shown
    prompt: str | list[int] | None = None                         # completions


# ------------------------------------------------------------------------- field checks

def _type(body: dict, key: str, types: tuple, what: str, default: Any = None) -> Any:
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) and bool not in types or not isinstance(v, types):
        raise bad(f"'{key}' must be {what}, got {json.dumps(v)[:60]}", key, "invalid_type")
    return v


def _number(body: dict, key: str, lo: float, hi: float, default: Any = None) -> Any:
    v = _type(body, key, (int, float), "a number", default)
    if v is not None and not lo <= v <= hi:
        raise bad(f"'{key}' must be between {lo:g} and {hi:g}, got {v}", key, "out_of_range")
    return v


def _common(body: Any, served: str) -> Request:
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object", None, "invalid_body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad(f"'model' is required: the name of the model to use ('{served}' here; GET /v1/models lists it)",
                  "model", "missing_field" if model is None else "invalid_type")
    if model != served:
        raise APIError(404, f"the model '{model}' does not exist: this server serves '{served}'",
                       "model", "model_not_found")
    req = Request(model=model)
    req.stream = _type(body, "stream", (bool,), "true or false", False)
    opts = _type(body, "stream_options", (dict,), "an object", None)
    if opts is not None:
        if not req.stream:
            raise bad("'stream_options' is only allowed when 'stream' is true", "stream_options")
        req.include_usage = bool(_type(opts, "include_usage", (bool,), "true or false", False))
    n = _type(body, "n", (int,), "an integer", 1)
    if n != 1:
        raise bad(f"'n' must be 1 on this server (one choice per request), got {n}", "n", "unsupported")
    for key in ("max_completion_tokens", "max_tokens"):    # the newer name wins when both are given
        v = _type(body, key, (int,), "an integer", None)
        if v is not None:
            if v < 1:
                raise bad(f"'{key}' must be at least 1, got {v}", key, "out_of_range")
            req.max_tokens = v
            break
    req.temperature = _number(body, "temperature", 0.0, 2.0)
    req.top_p = _number(body, "top_p", 0.0, 1.0, 1.0)
    req.seed = _type(body, "seed", (int,), "an integer", None)
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise bad("'stop' must be a string or an array of strings", "stop", "invalid_type")
        if len(stops) > MAX_STOP:
            raise bad(f"'stop' may hold at most {MAX_STOP} strings, got {len(stops)}", "stop", "out_of_range")
        req.stop = tuple(s for s in stops if s)
    for key in ("presence_penalty", "frequency_penalty"):
        if _number(body, key, -2.0, 2.0, 0.0) != 0:
            raise bad(f"'{key}' is not supported by this server (leave it at 0)", key, "unsupported")
    if body.get("logprobs") not in (None, False, 0):
        raise bad("'logprobs' is not supported by this server", "logprobs", "unsupported")
    return req


# ------------------------------------------------------------------------- chat requests

def _text(content: Any, where: str) -> str:
    """A message's content: a string, null, or an array of {"type": "text", "text"} parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        out = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise bad(f"{where}.content[{i}]: only text parts ({{\"type\": \"text\", \"text\": ...}}) "
                          f"are supported, got {kind!r}", f"{where}.content")
            out.append(part["text"])
        return "".join(out)
    raise bad(f"{where}.content must be a string or an array of text parts", f"{where}.content", "invalid_type")


def _tool_calls(calls: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise bad(f"{where}.tool_calls must be an array", f"{where}.tool_calls", "invalid_type")
    out = []
    for i, c in enumerate(calls):
        w = f"{where}.tool_calls[{i}]"
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad(f'{w} must be {{"id", "type": "function", "function": {{"name", "arguments"}}}}', w)
        raw = fn.get("arguments") or "{}"
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as e:
            raise bad(f"{w}.function.arguments is not valid JSON ({e.msg}): it must be a JSON object "
                      "encoded as a string", f"{w}.function.arguments") from None
        if not isinstance(args, dict):
            raise bad(f"{w}.function.arguments must encode a JSON object", f"{w}.function.arguments")
        out.append({"id": str(c.get("id") or f"call_{i}"), "name": fn["name"], "arguments": args})
    return out


def convert_messages(messages: Any) -> list[dict[str, Any]]:
    """OpenAI messages -> our message dicts (chat/types.py)."""
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty array of {\"role\", \"content\"} objects", "messages",
                  "missing_field" if messages is None else "invalid_type")
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}           # tool_call_id -> the tool's name, for tool results
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(f"{where} must be an object", where, "invalid_type")
        role = m.get("role")
        if role not in ROLES:
            raise bad(f"{where}.role must be one of {', '.join(ROLES)}, got {json.dumps(role)}", f"{where}.role")
        content = _text(m.get("content"), where)
        if role == "developer":          # OpenAI's newer name for the system message
            role = "system"
        if role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": content}
            if m.get("tool_calls"):
                msg["tool_calls"] = _tool_calls(m["tool_calls"], where)
                names.update({c["id"]: c["name"] for c in msg["tool_calls"]})
        elif role == "tool":
            cid = m.get("tool_call_id")
            if not isinstance(cid, str) or not cid:
                raise bad(f"{where}: a tool message needs 'tool_call_id' (the id of the call it answers)",
                          f"{where}.tool_call_id", "missing_field")
            msg = {"role": "tool", "tool_call_id": cid, "name": names.get(cid, m.get("name") or ""),
                   "content": content}
        else:
            if m.get("content") is None:
                raise bad(f"{where}.content is required for a {role} message", f"{where}.content", "missing_field")
            msg = {"role": role, "content": content}
        out.append(msg)
    return out


def schema_problem(schema: Any, where: str) -> str | None:
    """What is wrong with a tool's JSON schema (the subset models and templates read), or None."""
    if not isinstance(schema, dict):
        return f"{where} must be a JSON schema object"
    t = schema.get("type")
    for x in (t if isinstance(t, list) else [t] if t is not None else []):
        if x not in JSON_TYPES:
            return f"{where}.type {json.dumps(x)} is not a JSON schema type ({', '.join(sorted(JSON_TYPES))})"
    props = schema.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            return f"{where}.properties must be an object mapping names to schemas"
        for name, sub in props.items():
            if (p := schema_problem(sub, f"{where}.properties.{name}")) is not None:
                return p
    req = schema.get("required")
    if req is not None and not (isinstance(req, list) and all(isinstance(r, str) for r in req)):
        return f"{where}.required must be an array of property names"
    if "items" in schema and (p := schema_problem(schema["items"], f"{where}.items")) is not None:
        return p
    if "enum" in schema and not isinstance(schema["enum"], list):
        return f"{where}.enum must be an array"
    return None


def convert_tools(tools: Any, tool_choice: Any) -> list[dict[str, Any]]:
    """OpenAI tools + tool_choice -> the tools the model is shown, in our shape."""
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise bad("'tools' must be an array of {\"type\": \"function\", \"function\": {...}}", "tools", "invalid_type")
    out = []
    for i, t in enumerate(tools):
        where = f"tools[{i}]"
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
            raise bad(f'{where} must be {{"type": "function", "function": {{"name", "description", '
                      f'"parameters"}}}}', where)
        name = fn.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise bad(f"{where}.function.name must be 1-64 letters, digits, _ or -, got {json.dumps(name)}",
                      f"{where}.function.name")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if (problem := schema_problem(params, f"{where}.function.parameters")) is not None:
            raise bad(f"invalid tool schema: {problem}", f"{where}.function.parameters", "invalid_tool_schema")
        desc = fn.get("description", "")
        if not isinstance(desc, str):
            raise bad(f"{where}.function.description must be a string", f"{where}.function.description")
        out.append({"name": name, "description": desc, "parameters": params})
    if tool_choice is None or tool_choice == "auto":
        return out
    if tool_choice == "none":
        return []
    if tool_choice == "required":
        if not out:
            raise bad("tool_choice 'required' needs at least one tool in 'tools'", "tool_choice")
        return out
    if isinstance(tool_choice, dict) and isinstance(tool_choice.get("function"), dict):
        name = tool_choice["function"].get("name")
        chosen = [t for t in out if t["name"] == name]
        if not chosen:
            raise bad(f"tool_choice names the function {json.dumps(name)}, which is not in 'tools'", "tool_choice")
        return chosen
    raise bad('\'tool_choice\' must be "none", "auto", "required" or {"type": "function", "function": {"name"}}',
              "tool_choice")


def parse_chat(body: Any, served: str) -> Request:
    req = _common(body, served)
    req.messages = convert_messages(body.get("messages"))
    req.tools = convert_tools(body.get("tools"), body.get("tool_choice"))
    return req


def parse_completion(body: Any, served: str) -> Request:
    req = _common(body, served)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]                       # a batch of one
    ok = isinstance(prompt, str) and prompt or (isinstance(prompt, list) and prompt and all(
        isinstance(t, int) and not isinstance(t, bool) for t in prompt))
    if not ok:
        raise bad("'prompt' must be a non-empty string (or an array of token ids); one prompt per request",
                  "prompt", "missing_field" if prompt is None else "invalid_type")
    for key in ("echo", "suffix", "best_of"):
        if body.get(key) not in (None, False, 1, ""):
            raise bad(f"'{key}' is not supported by this server", key, "unsupported")
    req.prompt = prompt
    if req.max_tokens is None:
        req.max_tokens = 16                      # the completions API's documented default
    return req


# ------------------------------------------------------------------------- responses

def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def wire_call(call: ToolCall) -> dict[str, Any]:
    """A parsed call -> OpenAI's shape. A malformed one keeps the text the model wrote as its
    arguments, so the client sees (and can report) what went wrong."""
    args = call.raw if call.error and call.raw is not None else json.dumps(call.arguments, ensure_ascii=False)
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": args}}


class ChatResponse:
    """Builds a chat.completion, or its stream of chunks, as events arrive."""

    def __init__(self, model: str):
        self.id, self.model, self.created = new_id("chatcmpl"), model, int(time.time())
        self.text: list[str] = []
        self.calls: list[ToolCall] = []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, include_usage: bool = False):
        c = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            c["usage"] = None                    # as OpenAI: null on every chunk but the last
        return c

    def role_chunk(self, include_usage: bool) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""}, None, include_usage)

    def text_chunk(self, text: str, include_usage: bool) -> dict[str, Any]:
        self.text.append(text)
        return self._chunk({"content": text}, None, include_usage)

    def call_chunks(self, call: ToolCall, include_usage: bool) -> list[dict[str, Any]]:
        index = len(self.calls)
        self.calls.append(call)
        w = wire_call(call)
        head = {"index": index, "id": w["id"], "type": "function", "function": {"name": w["function"]["name"],
                                                                                 "arguments": ""}}
        return [self._chunk({"tool_calls": [head]}, None, include_usage),
                self._chunk({"tool_calls": [{"index": index, "function": {"arguments": w["function"]["arguments"]}}]},
                            None, include_usage)]

    def finish_chunk(self, reason: str, include_usage: bool) -> dict[str, Any]:
        return self._chunk({}, reason, include_usage)

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage(prompt_tokens, completion_tokens)}

    def whole(self, reason: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or (None if self.calls else ""),
                               "refusal": None}
        if self.calls:
            msg["tool_calls"] = [wire_call(c) for c in self.calls]
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": reason}],
                "usage": usage(prompt_tokens, completion_tokens)}


class CompletionResponse:
    def __init__(self, model: str):
        self.id, self.model, self.created = new_id("cmpl"), model, int(time.time())
        self.text: list[str] = []

    def chunk(self, text: str, finish: str | None = None, include_usage: bool = False) -> dict[str, Any]:
        self.text.append(text)
        c = {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
             "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            c["usage"] = None
        return c

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": [], "usage": usage(prompt_tokens, completion_tokens)}

    def whole(self, reason: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "text": "".join(self.text), "logprobs": None, "finish_reason": reason}],
                "usage": usage(prompt_tokens, completion_tokens)}
