"""HF chat templates: our rendering == transformers.apply_chat_template; tool-call parsers."""

import json

import pytest
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from groundup.chat.template import (ChatTemplate, JsonCallStreamParser, hermes_stream_parser,
                                    load_chat_template, parse_hermes, parse_llama3)
from groundup.chat.types import TextDelta, ToolCallEvent

# A template in the style of Qwen2.5-Instruct's (tools in the system turn as JSON lines,
# <tool_call> blocks, consecutive tool results merged into one user turn).
QWEN_STYLE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions.\n\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nReturn each call as <tool_call>\n{\"name\": <name>, \"arguments\": <args>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

# A template in the style of Llama 3.1-Instruct's (bos_token, tools in the first user turn
# as indented JSON, one JSON call per turn, ipython results, raise_exception, strftime_now).
LLAMA_STYLE = r"""{{- bos_token }}
{%- if not tools is defined %}{%- set tools = none %}{%- endif %}
{%- if not date_string is defined %}{%- set date_string = strftime_now("%d %b %Y") %}{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- if tools is not none %}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
    {%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

TOOLS = [
    {"name": "read_file", "description": "Read a file <with> \"quotes\" & ünïcode.",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
    {"name": "run", "description": "Run a command.",
     "parameters": {"type": "object", "properties": {"command": {"type": "string"},
                                                     "timeout": {"type": "integer"}},
                    "required": ["command"]}},
]

CONVERSATIONS = [
    [{"role": "user", "content": "hello"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "fix a.py"},
     {"role": "assistant", "content": "",
      "tool_calls": [{"id": "c1", "name": "read_file", "arguments": {"path": "a.py"}}]},
     {"role": "tool", "tool_call_id": "c1", "name": "read_file", "content": "x = 1 < 2"},
     {"role": "assistant", "content": "It is fine."}, {"role": "user", "content": "run the tests"}],
    [{"role": "user", "content": "two at once"},
     {"role": "assistant", "content": "Reading both.",
      "tool_calls": [{"id": "c1", "name": "read_file", "arguments": {"path": "a.py"}},
                     {"id": "c2", "name": "run", "arguments": {"command": "ls -la", "timeout": 5}}]},
     {"role": "tool", "tool_call_id": "c1", "name": "read_file", "content": "A"},
     {"role": "tool", "tool_call_id": "c2", "name": "run", "content": "B\nC"}],
]


def hf_shape(messages):
    """The conversation as transformers' documentation writes it (written out independently)."""
    out = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            m["tool_calls"] = [{"id": c["id"], "type": "function",
                                "function": {"name": c["name"], "arguments": c["arguments"]}}
                               for c in m["tool_calls"]]
        out.append(m)
    return out


def hf_tokenizer(template, tmp_path):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "hello": 3}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                  bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.chat_template = template
    tok.save_pretrained(tmp_path)
    return tok


@pytest.mark.parametrize("template", [QWEN_STYLE, LLAMA_STYLE], ids=["qwen2.5-style", "llama3.1-style"])
@pytest.mark.parametrize("conv", range(len(CONVERSATIONS)))
@pytest.mark.parametrize("with_tools", [True, False])
def test_rendering_matches_transformers(template, conv, with_tools, tmp_path):
    messages = CONVERSATIONS[conv]
    if template is LLAMA_STYLE and conv == 2:
        messages = messages[:1]          # Llama 3.1 allows one call per turn
    tok = hf_tokenizer(template, tmp_path)
    tools = TOOLS if with_tools else None
    hf_tools = [{"type": "function", "function": t} for t in TOOLS] if with_tools else None
    expected = tok.apply_chat_template(hf_shape(messages), tools=hf_tools, tokenize=False,
                                       add_generation_prompt=True)
    ours = load_chat_template(tmp_path)
    assert ours is not None and ours.special_tokens["bos_token"] == "<s>"
    assert ours.render(messages, tools, add_generation_prompt=True) == expected
    assert ChatTemplate(template, {"bos_token": "<s>"}).render(
        messages, tools, add_generation_prompt=False) == tok.apply_chat_template(
        hf_shape(messages), tools=hf_tools, tokenize=False, add_generation_prompt=False)


def test_template_errors_and_sandbox():
    import jinja2
    with pytest.raises(jinja2.exceptions.TemplateError, match="only supports single"):
        ChatTemplate(LLAMA_STYLE, {"bos_token": "<s>"}).render(CONVERSATIONS[2], TOOLS[:0] or None)
    with pytest.raises(jinja2.exceptions.SecurityError):
        ChatTemplate("{{ messages.__class__.__mro__ }}").render([{"role": "user", "content": "x"}])


def test_tool_format_detection():
    assert ChatTemplate(QWEN_STYLE).tool_format == "hermes"
    assert ChatTemplate(LLAMA_STYLE).tool_format == "llama3"
    assert ChatTemplate("{{ messages[0].content }}").tool_format is None


def test_parse_hermes_several_calls_and_errors():
    out = ('Let me check.\n<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>\n'
           '<tool_call>\n{"name": "run", "arguments": {"command": "ls"}}\n</tool_call>'
           '<tool_call>\n{"name": "run", "arguments": {"command": 3}}\n</tool_call>'
           '<tool_call>{"name": "nope", "arguments": {}}</tool_call><tool_call>{bad json</tool_call>')
    text, calls = parse_hermes(out, TOOLS)
    assert text == "Let me check.\n\n"
    assert [(c.name, c.arguments) for c in calls[:2]] == [("read_file", {"path": "a.py"}), ("run", {"command": "ls"})]
    assert calls[0].error is None and calls[1].error is None
    assert "command must be string" in calls[2].error
    assert "unknown tool" in calls[3].error
    assert "not valid JSON" in calls[4].error


def test_hermes_stream_equals_one_shot_for_every_split():
    out = 'Ok <tool_call>\n{"name": "run", "arguments": {"command": "ls"}}\n</tool_call><|im_end|>ignored'
    one_text, one_calls = parse_hermes(out.split("<|im_end|>")[0], TOOLS)
    for i in range(len(out) + 1):
        p = hermes_stream_parser(TOOLS, stops=["<|im_end|>"])
        events = p.feed(out[:i]) + p.feed(out[i:]) + p.finish()
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == one_text
        assert [(e.call.name, e.call.arguments) for e in events if isinstance(e, ToolCallEvent)] == \
            [(c.name, c.arguments) for c in one_calls]


def test_parse_llama3_json_form():
    text, calls = parse_llama3('{"name": "run", "parameters": {"command": "ls"}}', TOOLS)
    assert text == "" and [(c.name, c.arguments, c.error) for c in calls] == [("run", {"command": "ls"}, None)]
    text, calls = parse_llama3('<|python_tag|>{"name": "read_file", "parameters": {"path": "x"}}; '
                               '{"name": "run", "parameters": {"command": "pwd"}}', TOOLS)
    assert [c.name for c in calls] == ["read_file", "run"]
    assert parse_llama3("Just prose {not json}", TOOLS) == ("Just prose {not json}", [])
    assert parse_llama3("{not a call}", TOOLS) == ("{not a call}", [])
    p = JsonCallStreamParser(TOOLS, stops=["<|eot_id|>"])
    events = [e for ch in '{"name": "run", "parameters": {"command": "ls"}}<|eot_id|>' for e in p.feed(ch)]
    events += p.finish()
    assert [type(e) for e in events] == [ToolCallEvent] and events[0].call.arguments == {"command": "ls"}
    p = JsonCallStreamParser(TOOLS, stops=["<|eot_id|>"])
    assert p.feed("Hel") == [TextDelta("Hel")]            # prose streams right away
    assert p.feed("lo<|eot") == [TextDelta("lo")] and p.finish() == [TextDelta("<|eot")]


def test_hf_shape_conversion_of_tools_and_calls():
    from groundup.chat.template import to_hf_messages, to_hf_tools
    msgs = to_hf_messages(CONVERSATIONS[1])
    assert msgs[2]["tool_calls"] == [{"id": "c1", "type": "function",
                                      "function": {"name": "read_file", "arguments": {"path": "a.py"}}}]
    assert to_hf_tools(TOOLS)[0] == {"type": "function", "function": TOOLS[0]}
    assert json.loads(json.dumps(to_hf_messages([{"role": "assistant", "content": None}]))) == [{"role": "assistant"}]
