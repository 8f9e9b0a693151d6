"""Hugging Face chat templates, and the tool-call formats of real open models.

A Hugging Face model directory describes its chat format as a Jinja2 program (the
`chat_template` in tokenizer_config.json, or a `chat_template.jinja` file next to it). It is
run with the messages, the tool schemas and the special tokens, and prints the prompt text.
The model then answers in its own tool-call syntax, which the harness has to parse:

    Hermes / Qwen2.5 / Qwen3:  <tool_call>\\n{"name": "f", "arguments": {...}}\\n</tool_call>  (several)
    Llama 3.1 / 3.2:           {"name": "f", "parameters": {...}}   (the whole answer, JSON;
                               sometimes after <|python_tag|>)

Design choices:
- Rendering matches `transformers`' apply_chat_template(..., tokenize=False): the same
  sandboxed environment (ImmutableSandboxedEnvironment: a template from the internet cannot
  touch Python internals), trim_blocks + lstrip_blocks, the loopcontrols extension, a `tojson`
  that does not HTML-escape, `raise_exception`, `strftime_now`, and the special tokens
  (bos_token, eos_token, ...) as variables. Keys whose value is None are dropped from
  messages first, as transformers does (templates test `is defined`, not `is none`).
- Our message dicts (groundup/chat/types.py) are converted to the OpenAI-like shape the
  templates expect: tool calls become {"type": "function", "function": {"name", "arguments"}}
  with arguments as a dict (templates apply `| tojson` themselves), tools become
  {"type": "function", "function": {name, description, parameters}}.
- The parsers reuse the streaming machinery of our own format (`StreamParser` with other
  markers), so HF models stream text and tool calls exactly like our models do, and
  malformed calls become `ToolCall.error`s here too.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

from groundup.chat.format import StreamParser, ToolSet
from groundup.chat.types import TextDelta, ToolCall, ToolCallEvent
from groundup.errors import UserError

SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                      "cls_token", "mask_token")


def _compile(source: str):
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # Jinja's own tojson HTML-escapes ("<" -> "\u003c"); chat templates expect plain JSON
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


def to_hf_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our message dicts -> the shape HF chat templates read (None-valued keys dropped)."""
    out = []
    for m in messages:
        m = {k: v for k, v in m.items() if v is not None}
        if not m.get("tool_calls"):
            m.pop("tool_calls", None)     # templates test `'tool_calls' in message`
        else:
            m["tool_calls"] = [
                c if "function" in c else
                {"id": c.get("id"), "type": "function",
                 "function": {"name": c["name"], "arguments": c.get("arguments") or {}}}
                for c in m["tool_calls"]]
            m["tool_calls"] = [{k: v for k, v in c.items() if v is not None} for c in m["tool_calls"]]
        out.append(m)
    return out


def to_hf_tools(tools: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    return [t if t.get("type") == "function" else {"type": "function", "function": dict(t)}
            for t in tools]


class ChatTemplate:
    """A compiled chat template plus the special-token strings it may refer to."""

    def __init__(self, source: str, special_tokens: dict[str, str] | None = None):
        self.source = source
        self.special_tokens = dict(special_tokens or {})
        self._template = _compile(source)

    def render(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None,
               add_generation_prompt: bool = True, **kwargs: Any) -> str:
        return self._template.render(messages=to_hf_messages(messages), tools=to_hf_tools(tools),
                                     documents=None, add_generation_prompt=add_generation_prompt,
                                     **{**self.special_tokens, **kwargs})

    @property
    def tool_format(self) -> str | None:
        """Which tool-call syntax the template teaches: "hermes", "llama3" or None."""
        if "<tool_call>" in self.source:
            return "hermes"
        if "<|python_tag|>" in self.source or "ipython" in self.source:
            return "llama3"
        return None

    def stream_parser(self, tools: Iterable[dict[str, Any] | str] | None,
                      stops: Sequence[str] = ()) -> "StreamParser | JsonCallStreamParser":
        if self.tool_format == "llama3":
            return JsonCallStreamParser(tools, stops)
        return hermes_stream_parser(tools, stops)


def _token_str(v: Any) -> str | None:
    if isinstance(v, dict):                 # an AddedToken serialized as {"content": ...}
        v = v.get("content")
    return v if isinstance(v, str) else None


def load_chat_template(model_dir: str | Path) -> ChatTemplate | None:
    """The chat template of a HF model directory, or None when it has none (our own models)."""
    d = Path(model_dir)
    cfg_path = d / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    source = cfg.get("chat_template")
    if isinstance(source, list):            # named templates: [{"name": ..., "template": ...}]
        named = {t["name"]: t["template"] for t in source}
        source = named.get("tool_use") or named.get("default")
    if (d / "chat_template.jinja").is_file():   # transformers >= 4.4x saves it as its own file
        source = (d / "chat_template.jinja").read_text(encoding="utf-8")
    if not source:
        return None
    special = {k: s for k in SPECIAL_TOKEN_KEYS if (s := _token_str(cfg.get(k))) is not None}
    try:
        return ChatTemplate(source, special)
    except Exception as e:   # a jinja syntax error in a downloaded file is the user's to fix
        raise UserError(f"{d}: the chat template does not compile ({e}) -- fix or remove it") from None


# ---------------------------------------------------------------------- tool-call parsers

def _call_from_json(body: str, toolset: ToolSet, args_keys=("arguments", "parameters")) -> ToolCall:
    """{"name": ..., "arguments": {...}} (or "parameters") -> ToolCall, errors included."""
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as e:
        return ToolCall(name="", arguments={}, raw=body,
                        error=f"tool call is not valid JSON ({e.msg} at char {e.pos})")
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return ToolCall(name="", arguments={}, raw=body,
                        error='tool call must be a JSON object {"name": ..., "arguments": {...}}')
    args = next((obj[k] for k in args_keys if k in obj), {})
    if isinstance(args, str):               # some models double-encode the arguments
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            pass
    if not isinstance(args, dict):
        return ToolCall(name=obj["name"], arguments={}, raw=body,
                        error=f"arguments of {obj['name']} must be a JSON object")
    return ToolCall(name=obj["name"], arguments=args, raw=body,
                    error=toolset.check(obj["name"], args))


HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"


def hermes_stream_parser(tools: Iterable[dict[str, Any] | str] | None,
                         stops: Sequence[str] = ()) -> StreamParser:
    """Streaming parser for <tool_call>{json}</tool_call> (Hermes, Qwen2.5, Qwen3)."""
    return StreamParser(tools, open_marker=HERMES_OPEN, close_marker=HERMES_CLOSE,
                        stop_markers=tuple(stops), parse_body=_call_from_json)


def parse_hermes(text: str, tools: Iterable[dict[str, Any] | str] | None = None
                 ) -> tuple[str, list[ToolCall]]:
    p = hermes_stream_parser(tools)
    return _drain(p.feed(text) + p.finish())


def _drain(events) -> tuple[str, list[ToolCall]]:
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return text, [e.call for e in events if isinstance(e, ToolCallEvent)]


PYTHON_TAG = "<|python_tag|>"


def parse_llama3(text: str, tools: Iterable[dict[str, Any] | str] | None = None
                 ) -> tuple[str, list[ToolCall]]:
    """Llama 3.1's JSON tool call: the whole answer is {"name": ..., "parameters": {...}}
    (optionally after <|python_tag|>; several may be separated by ";"). Anything else is text."""
    toolset = ToolSet(tools)
    body = text.strip()
    tagged = body.startswith(PYTHON_TAG)
    if tagged:
        body = body[len(PYTHON_TAG):].strip()
    if not body.startswith("{"):
        return text, []
    calls = []
    decoder = json.JSONDecoder()
    pos = 0
    while pos < len(body):
        try:
            _, end = decoder.raw_decode(body, pos)
        except json.JSONDecodeError:
            if not calls and not tagged:
                return text, []     # JSON-looking prose, not a call: leave it as text
            calls.append(_call_from_json(body[pos:], toolset))
            break
        calls.append(_call_from_json(body[pos:end], toolset))
        pos = end
        while pos < len(body) and body[pos] in " \n\t;":
            pos += 1
    if not tagged and any(c.name == "" for c in calls):
        return text, []
    return "", calls


class JsonCallStreamParser:
    """Streaming for the Llama 3 form: an answer that starts with "{" (or <|python_tag|>) is
    held back and parsed at the end; any other answer streams as plain text."""

    def __init__(self, tools: Iterable[dict[str, Any] | str] | None = None, stops: Sequence[str] = ()):
        self.tools = list(tools) if tools is not None else None
        self.stops = tuple(stops)
        self.buf = ""
        self.mode: str | None = None      # None: undecided, "text", "json"
        self.done = False

    def feed(self, delta: str) -> list[TextDelta | ToolCallEvent]:
        if self.done:
            return []
        self.buf += delta
        for s in self.stops:
            if s in self.buf:
                self.buf = self.buf[: self.buf.index(s)]
                return self._flush() + self.finish()
        if self.mode is None:
            head = self.buf.lstrip()
            if head and not (head.startswith("{") or PYTHON_TAG.startswith(head[:len(PYTHON_TAG)])):
                self.mode = "text"
            elif head.startswith("{") or head.startswith(PYTHON_TAG):
                self.mode = "json"
        return self._flush()

    def _flush(self) -> list[TextDelta | ToolCallEvent]:
        if self.mode == "text":
            keep = max((k for s in self.stops for k in range(len(s) - 1, 0, -1)
                        if self.buf.endswith(s[:k])), default=0)
            out, self.buf = self.buf[: len(self.buf) - keep], self.buf[len(self.buf) - keep:]
            return [TextDelta(out)] if out else []
        return []

    def finish(self) -> list[TextDelta | ToolCallEvent]:
        if self.done:
            return []
        self.done = True
        if self.mode == "text":
            text, calls = self.buf, []
        else:
            text, calls = parse_llama3(self.buf, self.tools)
        self.buf = ""
        return ([TextDelta(text)] if text else []) + [ToolCallEvent(c) for c in calls]
