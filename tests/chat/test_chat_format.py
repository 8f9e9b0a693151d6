"""Our chat format: rendering, the loss mask, one-shot and streaming parsing."""

from hypothesis import given, settings, strategies as st

from groundup.chat.format import (END_TOOL_CALL, TOOL_CALL, StreamParser, parse_assistant,
                                  render_segments, render_text, render_tool, schema_errors)
from groundup.chat.types import TextDelta, ToolCallEvent

TOOLS = [
    {"name": "read_file", "description": "Read a text file. Returns numbered lines.",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"},
                                                     "offset": {"type": "integer"}},
                    "required": ["path"]}},
    {"name": "run", "description": "Run a shell command\nin the repository.",
     "parameters": {"type": "object", "properties": {"command": {"type": "string"},
                                                     "mode": {"enum": ["fast", "full"]},
                                                     "files": {"type": "array", "items": {"type": "string"}}},
                    "required": ["command"]}},
]


def calls_of(calls):
    return [(c.name, c.arguments, c.error) for c in calls]


def test_tool_definitions_are_one_compact_line_each():
    assert render_tool(TOOLS[0]) == "read_file(path: string, offset?: integer) - Read a text file."
    assert render_tool(TOOLS[1]) == ('run(command: string, mode?: "fast"|"full", files?: string[])'
                                     " - Run a shell command in the repository.")


def test_render_layout_and_mask():
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
            {"role": "assistant", "content": "A",
             "tool_calls": [{"id": "c1", "name": "read_file", "arguments": {"path": "a.py"}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "read_file", "content": "R"},
            {"role": "assistant", "content": "done"}]
    text = render_text(msgs, TOOLS[:1])
    assert text == ("<|begin_of_text|><|system|>S<|end_of_turn|>"
                    "<|tools|>read_file(path: string, offset?: integer) - Read a text file.<|end_of_turn|>"
                    "<|user|>U<|end_of_turn|>"
                    '<|assistant|>A<|tool_call|>read_file{"path": "a.py"}<|end_tool_call|><|end_of_turn|>'
                    "<|tool_result|>R<|end_of_turn|><|assistant|>done<|end_of_turn|>")
    trained = "".join(t for t, _, m in render_segments(msgs, TOOLS[:1]) if m)
    assert trained == ('A<|tool_call|>read_file{"path": "a.py"}<|end_tool_call|><|end_of_turn|>'
                       "done<|end_of_turn|>")
    assert render_text(msgs[:2], None, add_generation_prompt=True).endswith("<|end_of_turn|><|assistant|>")


def test_a_scripted_mistake_stays_in_context_without_loss():
    """An assistant message marked train: false (oracle data: a wrong path on purpose) is
    rendered like any other -- the model must see the mistake and its error -- but no token of
    it, text or call, carries loss; the recovery after it does."""
    msgs = [{"role": "user", "content": "U"},
            {"role": "assistant", "content": "Guess.", "train": False,
             "tool_calls": [{"id": "c1", "name": "read_file", "arguments": {"path": "no.py"}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "read_file", "content": "error: no.py does not exist"},
            {"role": "assistant", "content": "Search.",
             "tool_calls": [{"id": "c2", "name": "read_file", "arguments": {"path": "a.py"}}]}]
    assert 'Guess.<|tool_call|>read_file{"path": "no.py"}' in render_text(msgs, TOOLS[:1])
    trained = "".join(t for t, _, m in render_segments(msgs, TOOLS[:1]) if m)
    assert trained == 'Search.<|tool_call|>read_file{"path": "a.py"}<|end_tool_call|><|end_of_turn|>'


def test_malformed_calls_become_errors_not_exceptions():
    out = ("x" + TOOL_CALL + 'read_file{"path":1}' + END_TOOL_CALL
           + TOOL_CALL + 'read_file{"path":"a","extra":2}' + END_TOOL_CALL
           + TOOL_CALL + "nope{}" + END_TOOL_CALL
           + TOOL_CALL + "read_file{oops" + END_TOOL_CALL
           + TOOL_CALL + '{"path":"a"}' + END_TOOL_CALL
           + TOOL_CALL + "read_file[1]" + END_TOOL_CALL
           + TOOL_CALL + 'run{"command":"ls","mode":"slow","files":["a",3]}' + END_TOOL_CALL
           + TOOL_CALL + 'read_file{"path":"a"')
    text, calls = parse_assistant(out, TOOLS)
    assert text == "x"
    errors = [c.error for c in calls]
    assert len(calls) == 8 and all(errors)
    assert "path must be string" in errors[0]
    assert "unknown argument 'extra'" in errors[1]
    assert "unknown tool 'nope'" in errors[2]
    assert "not valid JSON" in errors[3]
    assert "without a tool name" in errors[4]
    assert "must be a JSON object" in errors[5]
    assert "mode must be one of" in errors[6] and "files[1] must be string" in errors[6]
    assert "cut off" in errors[7]
    assert calls[3].raw == "read_file{oops"


def test_schema_types():
    assert schema_errors(True, {"type": "integer"})          # bool is not an integer in JSON
    assert not schema_errors(3.0, {"type": "integer"})
    assert not schema_errors(None, {"type": ["string", "null"]})
    assert not schema_errors({"a": 1}, {"type": "object", "additionalProperties": True,
                                        "properties": {"b": {"type": "string"}}})


def test_names_only_or_no_tools():
    out = TOOL_CALL + 'anything{"a":1}' + END_TOOL_CALL
    assert calls_of(parse_assistant(out, None)[1]) == [("anything", {"a": 1}, None)]
    assert parse_assistant(out, ["other"])[1][0].error.startswith("unknown tool")


def test_text_stops_at_end_of_turn():
    text, calls = parse_assistant("hi<|end_of_turn|>garbage" + TOOL_CALL + "x{}" + END_TOOL_CALL)
    assert text == "hi" and calls == []


# --- render -> parse round trip, and streaming == one-shot -------------------------------

json_values = st.recursive(st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=6)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)
# text that the model writes: anything but our own markers (those would be special tokens)
plain_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30).filter(
    lambda s: "<|" not in s)
calls_st = st.lists(st.fixed_dictionaries({"name": names,
                                           "arguments": st.dictionaries(st.text(max_size=6), json_values, max_size=3)}),
                    max_size=4)


@settings(max_examples=150, deadline=None)
@given(text=plain_text, calls=calls_st)
def test_render_parse_round_trip(text, calls):
    msgs = [{"role": "user", "content": "go"}, {"role": "assistant", "content": text, "tool_calls": calls}]
    rendered = render_text(msgs, None)
    generated = rendered.split("<|assistant|>", 1)[1]        # what the model produced
    got_text, got_calls = parse_assistant(generated, None)
    assert got_text == text
    assert calls_of(got_calls) == [(c["name"], c["arguments"], None) for c in calls]


def stream_all(chunks, tools):
    p = StreamParser(tools)
    events = []
    for ch in chunks:
        events += p.feed(ch)
    events += p.finish()
    return events


def summarize(events):
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert all(e.text for e in events if isinstance(e, TextDelta))   # no empty deltas
    return text, calls_of(calls)


pieces = st.lists(st.sampled_from([
    "Let me look. ", "<", "<|", "|>", "a < b", TOOL_CALL, END_TOOL_CALL, "<|end_of_turn|>", "<|end_of_text|>",
    'read_file{"path":"a.py"}', 'run{"command":"ls -la"}', "nope{}", "{bad", "\n", "ü€", "<|tool",
    "<|end_tool", 'read_file{"path":3}',
]), max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(output=pieces, data=st.data())
def test_streaming_equals_one_shot_for_every_chunking(output, data):
    cuts = sorted(data.draw(st.sets(st.integers(0, len(output)), max_size=8)))
    bounds = [0, *cuts, len(output)]
    chunks = [output[a:b] for a, b in zip(bounds, bounds[1:])]
    text, calls = parse_assistant(output, TOOLS)
    assert summarize(stream_all(chunks, TOOLS)) == (text, calls_of(calls))


def test_every_split_of_one_output():
    out = ('I will read it.<|tool_call|>read_file{"path":"a.py"}<|end_tool_call|>'
           '<|tool_call|>run{"command":"pytest -q"}<|end_tool_call|><|end_of_turn|>')
    expected = summarize(stream_all([out], TOOLS))
    for i in range(len(out) + 1):
        for j in range(i, len(out) + 1, 7):
            assert summarize(stream_all([out[:i], out[i:j], out[j:]], TOOLS)) == expected


def test_text_is_released_as_soon_as_it_cannot_start_a_marker():
    p = StreamParser(TOOLS)
    assert p.feed("a <") == [TextDelta("a ")]           # "<" could start <|tool_call|>
    assert p.feed("b") == [TextDelta("<b")]             # now it cannot
    assert p.feed("<|tool_") == []
    assert p.feed('call|>read_file{"path":') == []     # inside a call nothing is released
    (ev,) = p.feed('"x"}<|end_tool_call|>')
    assert ev.call.name == "read_file" and ev.call.arguments == {"path": "x"} and ev.call.error is None


def test_first_sentence_skips_abbreviations_and_parentheses():
    from groundup.chat.format import first_sentence
    assert first_sentence("Run a command (e.g. tests, git). Output is cut.") == "Run a command (e.g. tests, git)."
    assert first_sentence("Version 1.2 works.\nSecond line.") == "Version 1.2 works."
    assert first_sentence("no end") == "no end"


def test_malformed_calls_in_history_are_shown_as_emitted_but_not_trained():
    bad = {"id": "x", "name": "read_file", "arguments": {}, "error": "not valid JSON", "raw": 'read_file{"pa'}
    good = {"id": "y", "name": "read_file", "arguments": {"path": "a"}}
    msgs = [{"role": "user", "content": "go"}, {"role": "assistant", "content": "", "tool_calls": [bad]},
            {"role": "tool", "tool_call_id": "x", "content": "error: not valid JSON"},
            {"role": "assistant", "content": "", "tool_calls": [good]}]
    assert '<|tool_call|>read_file{"pa<|end_tool_call|>' in render_text(msgs, None)
    trained = "".join(t for t, _, m in render_segments(msgs, None) if m)
    assert trained == '<|end_of_turn|><|tool_call|>read_file{"path": "a"}<|end_tool_call|><|end_of_turn|>'
