"""groundup's own chat format: how a conversation with tools becomes tokens, and back.

A whole conversation, as the model sees it (special tokens in <|...|>, one per id):

    <|begin_of_text|><|system|>You are a coding agent.<|end_of_turn|>
    <|tools|>read_file(path: string, offset?: integer) - Read a text file.
    run(command: string) - Run a shell command.<|end_of_turn|>
    <|user|>Fix the bug in a.py<|end_of_turn|>
    <|assistant|>Let me look.<|tool_call|>read_file{"path": "a.py"}<|end_tool_call|><|end_of_turn|>
    <|tool_result|>def f(): ...<|end_of_turn|>
    <|assistant|>...

(the line breaks between turns are drawn for the reader; there are none in the ids.)

Design choices:
- Built for tiny models (context of 1-2k tokens, trained on a CPU): the format is regular
  (every turn is HEADER content <|end_of_turn|>) and compact. A tool definition is one line:
  name, arguments with types (`?` marks an optional one), the first sentence of the
  description -- not the full JSON schema, which would eat the context.
- A tool call is `<|tool_call|>NAME{JSON arguments}<|end_tool_call|>`: the name comes first as
  a plain word (cheap to learn, and the parser knows which schema to check before the
  arguments), the arguments are `json.dumps(...)` with its default `": "` and `", "`. Not the
  compact `":"`: with the space, a string argument starts after the token ` "`, the token before
  a quoted name in prose ("the bug in "door/"") -- so a copy into an argument can start where
  an induction head finds ` "` followed by the name (docs/08). Several calls may follow each
  other in one assistant turn, after its text.
- The assistant always closes its turn with <|end_of_turn|>, also after tool calls: one stop
  token for the engine. The tool results then come back as <|tool_result|> turns, in the order
  of the calls.
- The loss mask is 1 exactly on what the assistant produces (its text, its tool calls, its
  <|end_of_turn|>) and 0 on everything it is given, the <|assistant|> header included (the
  harness writes the header; the model only has to continue it). A malformed call kept in
  the history (one with `error` set) is masked too: train the recovery, not the mistake. So is
  an assistant message marked `"train": false` (a scripted mistake in oracle data: a path that
  does not exist, an edit that does not match), text and calls alike.
- Each piece is encoded on its own and the ids concatenated, so a special token is always
  exactly one id and user text can never forge one (it is encoded as ordinary text).
- Parsing never raises: a malformed call (no name, bad JSON, unknown tool, arguments that do
  not fit the tool's JSON schema, a call cut off by the end of generation) becomes a
  `ToolCall` with `error` set, which the agent returns to the model as the tool's result.
- `StreamParser` parses incrementally: text is released as soon as it can no longer be the
  start of a marker, a tool call as soon as its <|end_tool_call|> arrives. `parse_assistant`
  is the one-shot parser, written separately; tests check both agree on every chunking.
- Both work on text (what an HTTP stream or a string gives) or on tokens (`feed_token`,
  `parse_assistant(ids, tokenizer=...)`): with tokens, only a real special token is a
  marker, so a model that spells "<|tool_call|>" in ordinary characters is not misread.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Sequence

from groundup.chat.types import TextDelta, ToolCall, ToolCallEvent
from groundup.tokenizer.special import BOS, EOS, EOT

SYSTEM, USER, ASSISTANT = "<|system|>", "<|user|>", "<|assistant|>"
TOOLS, TOOL_CALL, END_TOOL_CALL, TOOL_RESULT = ("<|tools|>", "<|tool_call|>",
                                                "<|end_tool_call|>", "<|tool_result|>")
HEADERS = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT, "tool": TOOL_RESULT}
STOP_MARKERS = (EOT, EOS)        # where an assistant turn ends (the engine's stop tokens)

# A rendered conversation is a list of segments: (text, is_special, loss_mask).
Segment = tuple[str, bool, int]


# ----------------------------------------------------------------------------- rendering

def describe_type(schema: dict[str, Any]) -> str:
    """A JSON schema as a short type name: string, integer, string[], 'a'|'b', ..."""
    if "enum" in schema:
        return "|".join(json.dumps(v) for v in schema["enum"])
    t = schema.get("type", "any")
    if isinstance(t, list):
        return "|".join(str(x) for x in t)
    if t == "array" and isinstance(schema.get("items"), dict):
        return describe_type(schema["items"]) + "[]"
    return str(t)


_ABBREVIATIONS = ("e.g", "i.e", "etc", "vs", "cf")


def first_sentence(text: str) -> str:
    """The first sentence of a description: up to a . ? or ! that ends a sentence -- followed by
    a space, outside parentheses, not an abbreviation such as "e.g."."""
    text = " ".join((text or "").split())      # one line, whatever the original layout
    depth = 0
    for i, c in enumerate(text):
        depth += (c == "(") - (c == ")")
        if c in ".?!" and depth <= 0 and text[i + 1:i + 2] in ("", " "):
            word = text[:i].rsplit(" ", 1)[-1].lower()
            if word.lstrip("(") not in _ABBREVIATIONS:
                return text[: i + 1]
    return text


def render_tool(tool: dict[str, Any]) -> str:
    """One line per tool: `name(arg: type, opt?: type) - First sentence of the description.`"""
    params = tool.get("parameters") or {}
    required = set(params.get("required") or [])
    args = [f"{name}{'' if name in required else '?'}: {describe_type(schema)}"
            for name, schema in (params.get("properties") or {}).items()]
    line = f"{tool['name']}({', '.join(args)})"
    desc = first_sentence(tool.get("description", ""))
    return f"{line} - {desc}" if desc else line


def render_call(call: dict[str, Any] | ToolCall) -> str:
    """The body of one call, between <|tool_call|> and <|end_tool_call|>."""
    c = call.to_dict() if isinstance(call, ToolCall) else call
    if c.get("error") and c.get("raw") is not None:
        return c["raw"]          # a malformed call in the history is shown as it was emitted
    args = json.dumps(c.get("arguments") or {}, ensure_ascii=False)
    return f"{c['name']}{args}"


def render_segments(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None,
                    add_generation_prompt: bool = False) -> list[Segment]:
    """The conversation as (text, is_special, loss_mask) pieces, before tokenization."""
    segs: list[Segment] = [(BOS, True, 0)]
    tools_turn: list[Segment] = []
    if tools:
        tools_turn = [(TOOLS, True, 0), ("\n".join(render_tool(t) for t in tools), False, 0),
                      (EOT, True, 0)]
    rest = list(messages)
    if rest and rest[0].get("role") == "system":      # tool definitions follow the system turn
        segs += [(SYSTEM, True, 0), (str(rest[0].get("content") or ""), False, 0), (EOT, True, 0)]
        rest = rest[1:]
    segs += tools_turn
    for m in rest:
        role = m.get("role")
        if role not in HEADERS:
            raise ValueError(f"unknown message role {role!r} (expected one of {list(HEADERS)})")
        mask = 1 if role == "assistant" and m.get("train", True) else 0
        segs.append((HEADERS[role], True, 0))
        content = m.get("content")
        if isinstance(content, list):   # content blocks -> their text, in order
            content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
        segs.append((str(content or ""), False, mask))
        for call in (m.get("tool_calls") or []) if role == "assistant" else []:
            # a malformed call stays in context (the model must see what it got wrong) but is
            # not trained on: fine-tuning should teach the recovery, not the mistake
            c = call.to_dict() if isinstance(call, ToolCall) else call
            cm = 0 if c.get("error") or not mask else 1
            segs += [(TOOL_CALL, True, cm), (render_call(c), False, cm), (END_TOOL_CALL, True, cm)]
        segs.append((EOT, True, mask))
    if add_generation_prompt:
        segs.append((ASSISTANT, True, 0))
    return [s for s in segs if s[0]]                 # drop empty text pieces


def render_text(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None,
                add_generation_prompt: bool = False) -> str:
    """The conversation as one string (for reading, docs and debugging)."""
    return "".join(s[0] for s in render_segments(messages, tools, add_generation_prompt))


def encode_ordinary(tokenizer: Any, text: str) -> list[int]:
    """Encode user/model text so that "<|user|>" typed in it stays ordinary text."""
    return list(tokenizer.encode(text, allowed_special=set()))


def special_id(tokenizer: Any, token: str) -> int:
    i = getattr(tokenizer, "special_tokens", {}).get(token)
    if i is None:
        raise ValueError(f"the tokenizer has no special token {token} (not a groundup chat tokenizer)")
    return int(i)


def render_conversation(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None,
                        tokenizer: Any, add_generation_prompt: bool = False
                        ) -> tuple[list[int], list[int]]:
    """Token ids of the conversation, and the loss mask (1 = the assistant produced it)."""
    ids: list[int] = []
    mask: list[int] = []
    for text, is_special, m in render_segments(messages, tools, add_generation_prompt):
        piece = [special_id(tokenizer, text)] if is_special else encode_ordinary(tokenizer, text)
        ids += piece
        mask += [m] * len(piece)
    return ids, mask


def render_prompt(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None,
                  tokenizer: Any) -> list[int]:
    """Ids for generation: the conversation, then the <|assistant|> header to continue."""
    return render_conversation(messages, tools, tokenizer, add_generation_prompt=True)[0]


# ------------------------------------------------------------------ argument validation

_JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
               "array": list, "object": dict, "null": type(None)}


def _type_ok(value: Any, t: str) -> bool:
    if t in ("integer", "number") and isinstance(value, bool):
        return False                  # bool is an int subclass in Python, not in JSON
    if t == "integer" and isinstance(value, float):
        return value.is_integer()
    py = _JSON_TYPES.get(t)
    return True if py is None else isinstance(value, py)


def schema_errors(value: Any, schema: dict[str, Any], where: str = "arguments") -> list[str]:
    """The ways `value` breaks a (small, common subset of) JSON schema; [] when it fits.
    Checked: type (or list of types), enum, object properties/required/unknown keys, array
    items. Unknown keys are errors unless additionalProperties is true: for a small model a
    misspelled argument is a mistake to point out, not something to ignore."""
    errors: list[str] = []
    t = schema.get("type")
    types = t if isinstance(t, list) else [t] if t else []
    if types and not any(_type_ok(value, x) for x in types):
        return [f"{where} must be {' or '.join(types)}, got {type(value).__name__} {json.dumps(value)[:40]}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where} must be one of {json.dumps(schema['enum'])}")
    if isinstance(value, dict) and (t == "object" or "properties" in schema):
        props = schema.get("properties") or {}
        for name in schema.get("required") or []:
            if name not in value:
                errors.append(f"missing required argument {name!r}" if where == "arguments"
                              else f"{where}.{name} is required")
        if schema.get("additionalProperties") is not True and props:
            for name in value:
                if name not in props:
                    errors.append(f"unknown argument {name!r} (expected: {', '.join(props)})"
                                  if where == "arguments" else f"{where}.{name} is not allowed")
        for name, sub in props.items():
            if name in value and isinstance(sub, dict):
                errors += schema_errors(value[name], sub, name if where == "arguments"
                                        else f"{where}.{name}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors


# ---------------------------------------------------------------------------- parsing

class ToolSet:
    """What the parser knows about the tools: None (accept any name), names, or full tool
    dicts (names + JSON schemas to check the arguments against)."""

    def __init__(self, tools: Iterable[dict[str, Any] | str] | None):
        self.schemas: dict[str, dict[str, Any]] | None = None
        if tools is not None:
            self.schemas = {}
            for t in tools:
                if isinstance(t, str):
                    self.schemas[t] = {}
                else:
                    self.schemas[t["name"]] = t.get("parameters") or {}

    def check(self, name: str, arguments: Any) -> str | None:
        if self.schemas is None:
            return None
        if name not in self.schemas:
            known = ", ".join(self.schemas) or "none"
            return f"unknown tool {name!r} (available tools: {known})"
        errors = schema_errors(arguments, self.schemas[name])
        return f"invalid arguments for {name}: " + "; ".join(errors) if errors else None


def _is_name_char(c: str) -> bool:
    return c.isalnum() or c in "_-."


def parse_call(body: str, toolset: ToolSet) -> ToolCall:
    """One call body `name{json}` -> ToolCall (with `error` set when it is malformed)."""
    s = body.strip()
    n = 0
    while n < len(s) and _is_name_char(s[n]):
        n += 1
    name, rest = s[:n], s[n:].strip()
    if not name:
        return ToolCall(name="", arguments={}, raw=body,
                        error="tool call without a tool name: write NAME{json arguments}")
    if not rest:
        arguments: Any = {}
    else:
        try:
            arguments = json.loads(rest)
        except json.JSONDecodeError as e:
            return ToolCall(name=name, arguments={}, raw=body,
                            error=f"arguments of {name} are not valid JSON ({e.msg} at char {e.pos})")
    if not isinstance(arguments, dict):
        return ToolCall(name=name, arguments={}, raw=body,
                        error=f"arguments of {name} must be a JSON object, got {type(arguments).__name__}")
    return ToolCall(name=name, arguments=arguments, raw=body, error=toolset.check(name, arguments))


def _unterminated(call: ToolCall, close_marker: str) -> ToolCall:
    call.error = f"tool call cut off before {close_marker}" + (f" ({call.error})" if call.error else "")
    return call


def token_segments(ids: Sequence[int], tokenizer: Any) -> list[tuple[str, bool]]:
    """Ids -> [(text, is_special)]: runs of ordinary ids decoded together (so a character
    split over two tokens decodes whole), each special token on its own as its <|...|> string."""
    names = {i: s for s, i in tokenizer.special_tokens.items()}
    out: list[tuple[str, bool]] = []
    run: list[int] = []
    for i in ids:
        if i in names:
            if run:
                out.append((tokenizer.decode(run), False))
                run = []
            out.append((names[i], True))
        else:
            run.append(int(i))
    if run:
        out.append((tokenizer.decode(run), False))
    return out


def parse_assistant(output: str | Sequence[int], tools: Iterable[dict[str, Any] | str] | None = None,
                    tokenizer: Any = None) -> tuple[str, list[ToolCall]]:
    """A complete assistant output -> (text, tool calls). Text outside the calls is
    concatenated; everything after <|end_of_turn|> / <|end_of_text|> is ignored.

    Given ids (and their tokenizer), only real special tokens count as markers: text that
    spells "<|tool_call|>" in ordinary characters stays text. Given a string, the markers are
    recognised by their spelling (that is all a string can tell)."""
    toolset = ToolSet(tools)
    if not isinstance(output, str):
        if tokenizer is None:
            raise ValueError("parse_assistant needs the tokenizer to parse token ids")
        return _parse_segments(token_segments(output, tokenizer), toolset)
    for stop in STOP_MARKERS:                       # the turn ends at the first stop marker
        i = output.find(stop)
        if i >= 0:
            output = output[:i]
    text: list[str] = []
    calls: list[ToolCall] = []
    pos = 0
    while True:
        start = output.find(TOOL_CALL, pos)
        if start < 0:
            text.append(output[pos:])
            break
        text.append(output[pos:start])
        body_start = start + len(TOOL_CALL)
        end = output.find(END_TOOL_CALL, body_start)
        if end < 0:
            calls.append(_unterminated(parse_call(output[body_start:], toolset), END_TOOL_CALL))
            break
        calls.append(parse_call(output[body_start:end], toolset))
        pos = end + len(END_TOOL_CALL)
    return "".join(text), calls


def _parse_segments(segments: list[tuple[str, bool]], toolset: ToolSet) -> tuple[str, list[ToolCall]]:
    text: list[str] = []
    calls: list[ToolCall] = []
    body: list[str] | None = None                  # the call being read, when inside one
    for piece, special in segments:
        if special and piece in STOP_MARKERS:
            break
        if special and piece == TOOL_CALL and body is None:
            body = []
        elif special and piece == END_TOOL_CALL and body is not None:
            calls.append(parse_call("".join(body), toolset))
            body = None
        else:
            (text if body is None else body).append(piece)
    if body is not None:
        calls.append(_unterminated(parse_call("".join(body), toolset), END_TOOL_CALL))
    return "".join(text), calls


def _held_suffix(buf: str, markers: Sequence[str]) -> int:
    """Length of the longest end of `buf` that could still grow into one of `markers`."""
    best = 0
    for m in markers:
        for k in range(min(len(m) - 1, len(buf)), best, -1):
            if buf.endswith(m[:k]):
                best = k
                break
    return best


class StreamParser:
    """Incremental parser: feed text deltas as they are generated, get events back.

        p = StreamParser(tools)
        for delta in stream: events += p.feed(delta)
        events += p.finish()

    Text is released as soon as it cannot be the start of <|tool_call|> (or of a stop
    marker); a ToolCallEvent as soon as its <|end_tool_call|> arrives. After a stop marker
    everything is ignored (`done` becomes True). The markers and the parser of a call's body
    are parameters, so the same machinery parses other models' formats (chat/template.py)."""

    def __init__(self, tools: Iterable[dict[str, Any] | str] | None = None, *,
                 open_marker: str = TOOL_CALL, close_marker: str = END_TOOL_CALL,
                 stop_markers: Sequence[str] = STOP_MARKERS,
                 parse_body: Callable[[str, ToolSet], ToolCall] = parse_call):
        self.toolset = ToolSet(tools)
        self.open, self.close, self.stops = open_marker, close_marker, tuple(stop_markers)
        self.parse_body = parse_body
        self.buf = ""
        self.in_call = False
        self.done = False

    def feed(self, delta: str) -> list[TextDelta | ToolCallEvent]:
        events: list[TextDelta | ToolCallEvent] = []
        if self.done:
            return events
        self.buf += delta
        while not self.done:
            if not self.in_call:
                hits = [(self.buf.find(m), m) for m in (self.open, *self.stops)]
                hits = [h for h in hits if h[0] >= 0]
                if not hits:
                    keep = _held_suffix(self.buf, (self.open, *self.stops))
                    out = self.buf[: len(self.buf) - keep]
                    if out:
                        events.append(TextDelta(out))
                    self.buf = self.buf[len(self.buf) - keep:]
                    break
                i, marker = min(hits)
                if i > 0:
                    events.append(TextDelta(self.buf[:i]))
                self.buf = self.buf[i + len(marker):]
                if marker == self.open:
                    self.in_call = True
                else:
                    self.done, self.buf = True, ""
            else:
                hits = [(self.buf.find(m), m) for m in (self.close, *self.stops)]
                hits = [h for h in hits if h[0] >= 0]
                if not hits:
                    break                     # a call is only complete at its end marker
                i, marker = min(hits)
                body, self.buf = self.buf[:i], self.buf[i + len(marker):]
                self.in_call = False
                call = self.parse_body(body, self.toolset)
                if marker != self.close:
                    call = _unterminated(call, self.close)
                    self.done, self.buf = True, ""
                events.append(ToolCallEvent(call))
        return events

    def feed_token(self, text: str, special: bool) -> list[TextDelta | ToolCallEvent]:
        """Token-aware feeding, for an engine that knows which ids are special: only a special
        token can be a marker, so ordinary text is released at once and never mistaken for one.
        (Do not mix with `feed` on the same parser.)"""
        events: list[TextDelta | ToolCallEvent] = []
        if self.done or not text:
            return events
        if special and text in (self.open, self.close, *self.stops):
            marker = text
        else:
            marker = None
        if marker == self.open and not self.in_call:
            self.in_call, self.buf = True, ""
        elif marker == self.close and self.in_call:
            events.append(ToolCallEvent(self.parse_body(self.buf, self.toolset)))
            self.in_call, self.buf = False, ""
        elif marker in self.stops:
            if self.in_call:
                events.append(ToolCallEvent(_unterminated(self.parse_body(self.buf, self.toolset), self.close)))
            self.done, self.in_call, self.buf = True, False, ""
        elif self.in_call:
            self.buf += text
        else:
            events.append(TextDelta(text))
        return events

    def finish(self) -> list[TextDelta | ToolCallEvent]:
        """The end of generation: release held text, or report a call that was cut off."""
        events: list[TextDelta | ToolCallEvent] = []
        if not self.done:
            if self.in_call:
                call = _unterminated(self.parse_body(self.buf, self.toolset), self.close)
                events.append(ToolCallEvent(call))
            elif self.buf:
                events.append(TextDelta(self.buf))
        self.buf, self.in_call, self.done = "", False, True
        return events
