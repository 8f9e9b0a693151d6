"""AnthropicModel against a real HTTP server on 127.0.0.1 replaying the documented SSE events."""

import json

import pytest

from groundup.providers import ProviderError, collect
from groundup.providers.anthropic import AnthropicModel, to_anthropic
from groundup.providers.base import TextDelta, ToolCallEvent
from providers_http_server import ScriptedServer, free_port, sse

TOOLS = [{"name": "read_file", "description": "Read a file.",
          "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
         {"name": "run", "description": "Run a command.",
          "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}]


def documented_stream():
    """The event sequence of the Messages streaming docs: a text block, then two tool_use
    blocks whose input JSON arrives in input_json_delta fragments; pings in between."""
    ev = []

    def add(obj):
        ev.append(sse(obj, event=obj["type"]))

    add({"type": "message_start", "message": {
        "id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant",
        "model": "claude-test", "stop_sequence": None, "stop_reason": None, "content": [],
        "usage": {"input_tokens": 472, "output_tokens": 2, "cache_read_input_tokens": 10}}})
    add({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    add({"type": "ping"})
    for t in ["Okay,", " let's check", " the file."]:
        add({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})
    add({"type": "content_block_stop", "index": 0})
    for i, (tid, name, args) in enumerate([("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "read_file", {"path": "a.py"}),
                                           ("toolu_02AbCdEf", "run", {"command": "pytest -q"})], start=1):
        add({"type": "content_block_start", "index": i,
             "content_block": {"type": "tool_use", "id": tid, "name": name, "input": {}}})
        s = json.dumps(args)
        add({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": ""}})
        for a, b in [(0, 4), (4, 11), (11, len(s))]:
            add({"type": "content_block_delta", "index": i,
                 "delta": {"type": "input_json_delta", "partial_json": s[a:b]}})
        add({"type": "content_block_stop", "index": i})
    add({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 89}})
    add({"type": "message_stop"})
    blob = "".join(ev).encode()
    return [blob[i:i + 61] for i in range(0, len(blob), 61)]


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.close()


def model(server, **kw):
    return AnthropicModel("claude-test", base_url=server.url, api_key="sk-ant-test", backoff_base=0.001, **kw)


def test_text_block_and_two_tool_use_blocks(server):
    server.reply(200, documented_stream())
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "fix it"}]
    events = list(model(server).stream(msgs, TOOLS, max_tokens=500))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Okay, let's check the file."
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.id, c.name, c.arguments, c.error) for c in calls] == [
        ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "read_file", {"path": "a.py"}, None),
        ("toolu_02AbCdEf", "run", {"command": "pytest -q"}, None)]
    fin = events[-1]
    assert fin.reason == "tool_calls" and fin.usage.to_dict() == {"prompt_tokens": 482, "completion_tokens": 89,
                                                                  "cache_read_tokens": 10, "cache_write_tokens": 0}
    req = server.requests[0]
    assert req["path"] == "/v1/messages"
    assert req["headers"]["x-api-key"] == "sk-ant-test" and req["headers"]["anthropic-version"] == "2023-06-01"
    body = req["json"]
    assert body["max_tokens"] == 500 and body["stream"] is True
    # the system prompt as a block marked for the prompt cache (mark_cache_breakpoints)
    assert body["system"] == [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]
    assert body["tools"][1] == {"name": "run", "description": "Run a command.", "input_schema": TOOLS[1]["parameters"]}


def test_conversation_conversion_alternates_roles():
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "go"},
            {"role": "assistant", "content": "Reading.", "tool_calls": [
                {"id": "t1", "name": "read_file", "arguments": {"path": "a"}},
                {"id": "t2", "name": "run", "arguments": {"command": "ls"}}]},
            {"role": "tool", "tool_call_id": "t1", "name": "read_file", "content": "A"},
            {"role": "tool", "tool_call_id": "t2", "name": "run", "content": "B"},
            {"role": "user", "content": "and?"}]
    system, turns = to_anthropic(msgs)
    assert system == "S"
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [{"type": "text", "text": "Reading."},
                                   {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "a"}},
                                   {"type": "tool_use", "id": "t2", "name": "run", "input": {"command": "ls"}}]
    assert turns[2]["content"] == [{"type": "tool_result", "tool_use_id": "t1", "content": "A"},
                                   {"type": "tool_result", "tool_use_id": "t2", "content": "B"},
                                   {"type": "text", "text": "and?"}]


def test_429_then_success_and_overloaded(server):
    server.reply_json(429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
                      headers={"retry-after": "0"})
    server.reply_json(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    server.reply(200, documented_stream())
    msg, fin = collect(model(server).stream([{"role": "user", "content": "x"}], TOOLS))
    assert len(server.requests) == 3 and len(msg["tool_calls"]) == 2 and fin.reason == "tool_calls"


def test_401_unknown_model_context_overflow(server):
    server.reply_json(401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
    with pytest.raises(ProviderError, match="refused the API key.*ANTHROPIC_API_KEY"):
        list(model(server).stream([{"role": "user", "content": "x"}], []))
    assert len(server.requests) == 1
    server.reply_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-test"}})
    with pytest.raises(ProviderError, match="unknown model 'claude-test'"):
        list(model(server).stream([{"role": "user", "content": "x"}], []))
    server.reply_json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                       "message": "prompt is too long: 210000 tokens > 200000 maximum"}})
    with pytest.raises(ProviderError, match="context overflow"):
        list(model(server).stream([{"role": "user", "content": "x"}], []))


def test_error_event_mid_stream(server):
    server.reply(200, [sse({"type": "message_start", "message": {"usage": {"input_tokens": 1}}}, "message_start"),
                       sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")])
    with pytest.raises(ProviderError, match="overloaded_error"):
        list(model(server).stream([{"role": "user", "content": "x"}], []))


def test_connection_refused_and_missing_key(monkeypatch):
    m = AnthropicModel("c", base_url=f"http://127.0.0.1:{free_port()}", api_key="k", backoff_base=0.001, max_retries=1)
    with pytest.raises(ProviderError, match="cannot connect.*connection refused"):
        list(m.stream([{"role": "user", "content": "x"}], []))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY is not set"):
        AnthropicModel("c")


def test_check_before_a_session(server):
    server.reply_json(200, {"type": "model", "id": "claude-test", "display_name": "Claude Test"})
    model(server).check()
    assert server.requests[-1]["method"] == "GET" and server.requests[-1]["path"] == "/v1/models/claude-test"
    server.reply_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-test"}})
    with pytest.raises(ProviderError, match="unknown model"):
        model(server).check()
    server.reply_json(401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY"):
        model(server).check()
