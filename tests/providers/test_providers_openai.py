"""OpenAIModel against a real HTTP server on 127.0.0.1 streaming Chat Completions chunks."""

import json

import pytest

from groundup.providers import ProviderError, collect, load_model
from groundup.providers.base import Finish, TextDelta, ToolCallEvent
from groundup.providers.openai import OpenAIModel
from providers_http_server import ScriptedServer, free_port, sse

TOOLS = [{"name": "read_file", "description": "Read a file.",
          "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
         {"name": "run", "description": "Run a command.",
          "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}]


def chunk(delta=None, finish=None, usage=None, choices=True):
    c = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
         "model": "m", "system_fingerprint": "fp", "choices": []}
    if choices:
        c["choices"] = [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]
    if usage is not None:
        c["usage"] = usage
    return c


def tool_call_stream():
    """Text, then two tool calls whose argument strings are split mid-token."""
    args0 = json.dumps({"path": "src/ä.py"})
    args1 = json.dumps({"command": "pytest -q"})
    events = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me "}), chunk({"content": "look."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_A", "type": "function",
                               "function": {"name": "read_file", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": args0[:5]}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": args0[5:13]}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": args0[13:]}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_B", "type": "function",
                               "function": {"name": "run", "arguments": args1[:3]}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": args1[3:]}}]}),
        chunk({}, finish="tool_calls"),
        chunk(usage={"prompt_tokens": 57, "completion_tokens": 21, "total_tokens": 78}, choices=False),
    ]
    pieces = [sse(e) for e in events] + ["data: [DONE]\n\n"]
    # cut the byte stream at odd places too: SSE lines must be reassembled across reads
    blob = "".join(pieces).encode()
    return [blob[i:i + 97] for i in range(0, len(blob), 97)]


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.close()


def model(server, **kw):
    return OpenAIModel("test-model", base_url=server.url + "/v1", api_key="sk-test", backoff_base=0.001, **kw)


def test_text_and_tool_calls_split_mid_argument(server):
    server.reply(200, tool_call_stream())
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "fix it"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c0", "name": "run", "arguments": {"command": "ls"}}]},
            {"role": "tool", "tool_call_id": "c0", "name": "run", "content": "a.py"}]
    events = list(model(server).stream(msgs, TOOLS, max_tokens=100))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Let me ", "look."]
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.id, c.name, c.arguments, c.error) for c in calls] == [
        ("call_A", "read_file", {"path": "src/ä.py"}, None), ("call_B", "run", {"command": "pytest -q"}, None)]
    assert events[-1] == Finish("tool_calls", events[-1].usage)
    assert events[-1].usage.to_dict() == {"prompt_tokens": 57, "completion_tokens": 21,
                                          "cache_read_tokens": 0, "cache_write_tokens": 0}
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test"
    body = req["json"]
    assert body["stream"] is True and body["model"] == "test-model" and body["max_tokens"] == 100
    assert body["tools"][0] == {"type": "function", "function": TOOLS[0]}
    assert body["messages"][2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c0", "type": "function", "function": {"name": "run", "arguments": '{"command": "ls"}'}}]}
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "c0", "content": "a.py"}


def test_same_result_as_the_official_openai_client(server):
    """The openai SDK reading the same bytes accumulates the same text and calls."""
    openai = pytest.importorskip("openai")
    server.reply(200, tool_call_stream())
    server.reply(200, tool_call_stream())
    ours, _ = collect(model(server).stream([{"role": "user", "content": "x"}], TOOLS))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test")
    text, calls = "", {}
    for ch in client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "x"}],
                                             stream=True):
        for choice in ch.choices:
            text += choice.delta.content or ""
            for tc in choice.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = tc.id or slot["id"]
                slot["name"] += tc.function.name or ""
                slot["arguments"] += tc.function.arguments or ""
    assert ours["content"] == text
    assert [(c["id"], c["name"], c["arguments"]) for c in ours["tool_calls"]] == \
        [(s["id"], s["name"], json.loads(s["arguments"])) for _, s in sorted(calls.items())]


def test_bad_arguments_become_tool_call_errors(server):
    server.reply(200, [sse(chunk({"tool_calls": [{"index": 0, "id": "x", "function": {"name": "run", "arguments": '{"command": '}}]})),
                       sse(chunk({"tool_calls": [{"index": 1, "id": "y", "function": {"name": "run", "arguments": '{"command": 5}'}}]})),
                       sse(chunk({}, finish="stop")), "data: [DONE]\n\n"])
    events = list(model(server).stream([{"role": "user", "content": "x"}], TOOLS))
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert "not valid JSON" in calls[0].error and "command must be string" in calls[1].error
    assert events[-1].reason == "tool_calls"


def test_429_then_success_is_retried(server):
    server.reply_json(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
                      headers={"Retry-After": "0"})
    server.reply(503, ["upstream busy"], ctype="text/plain")
    server.reply(200, [sse(chunk({"content": "ok"})), sse(chunk({}, finish="stop")), "data: [DONE]\n\n"])
    msg, fin = collect(model(server).stream([{"role": "user", "content": "x"}], []))
    assert msg["content"] == "ok" and fin.reason == "stop" and len(server.requests) == 3


def test_429_forever_gives_a_clear_error(server):
    for _ in range(3):
        server.reply_json(429, {"error": {"message": "Rate limit reached"}})
    with pytest.raises(ProviderError, match="rate limited"):
        list(model(server, max_retries=2).stream([{"role": "user", "content": "x"}], []))


def test_401_is_a_clear_error_and_not_retried(server):
    server.reply_json(401, {"error": {"message": "Incorrect API key provided: sk-test.", "type": "invalid_request_error",
                                      "code": "invalid_api_key"}})
    with pytest.raises(ProviderError, match="refused the API key.*OPENAI_API_KEY"):
        list(model(server).stream([{"role": "user", "content": "x"}], []))
    assert len(server.requests) == 1


def test_unknown_model_context_overflow_and_wrong_url(server):
    server.reply_json(404, {"error": {"message": "The model `nope` does not exist or you do not have access to it.",
                                      "code": "model_not_found"}})
    with pytest.raises(ProviderError, match="unknown model 'test-model'"):
        list(model(server).stream([{"role": "user", "content": "x"}], []))
    server.reply_json(400, {"error": {"message": "This model's maximum context length is 4096 tokens. However, "
                                      "your messages resulted in 5000 tokens.", "code": "context_length_exceeded"}})
    with pytest.raises(ProviderError, match="context overflow"):
        list(model(server).stream([{"role": "user", "content": "x"}], []))
    server.reply(404, ["<html>Not Found</html>"], ctype="text/html")
    with pytest.raises(ProviderError, match="base URL"):
        list(model(server).stream([{"role": "user", "content": "x"}], []))
    server.reply(200, ["<html>hello</html>"], ctype="text/html")     # a web page, not the API
    with pytest.raises(ProviderError, match="not an event stream"):
        list(model(server).stream([{"role": "user", "content": "x"}], []))


def test_connection_refused():
    m = OpenAIModel("m", base_url=f"http://127.0.0.1:{free_port()}/v1", backoff_base=0.001, max_retries=1)
    with pytest.raises(ProviderError, match="cannot connect.*connection refused"):
        list(m.stream([{"role": "user", "content": "x"}], []))


def test_missing_key_for_the_official_endpoint(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ProviderError, match="OPENAI_API_KEY is not set"):
        load_model("openai:gpt-4o-mini")
    with pytest.raises(ProviderError, match="not an http"):
        OpenAIModel("m", base_url="localhost:8000")


def test_check_before_a_session(server):
    listing = {"object": "list", "data": [{"id": "qwen2.5:latest", "object": "model"}, {"id": "llama3.2:3b", "object": "model"}]}
    server.reply_json(200, listing)
    OpenAIModel("qwen2.5", base_url=server.url + "/v1").check()          # Ollama-style alias is fine
    assert server.requests[-1]["method"] == "GET" and server.requests[-1]["path"] == "/v1/models"
    server.reply_json(200, listing)
    with pytest.raises(ProviderError, match="unknown model 'gpt-9'.*qwen2.5:latest"):
        OpenAIModel("gpt-9", base_url=server.url + "/v1").check()
    server.reply_json(401, {"error": {"message": "Incorrect API key provided"}})
    with pytest.raises(ProviderError, match="401"):
        model(server).check()
    server.reply(404, ["no such route"], ctype="text/plain")              # a server without /models
    model(server).check()
    with pytest.raises(ProviderError, match="connection refused"):
        OpenAIModel("m", base_url=f"http://127.0.0.1:{free_port()}/v1").check()


def test_a_call_is_emitted_as_soon_as_the_next_one_starts(server):
    import threading
    gate = threading.Event()
    first = [sse(chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "read_file",
                                                                           "arguments": '{"path": "x"}'}}]})),
             sse(chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "run", "arguments": '{"comm'}}]}))]
    rest = [sse(chunk({"tool_calls": [{"index": 1, "function": {"arguments": 'and": "ls"}'}}]})),
            sse(chunk({}, finish="tool_calls")), "data: [DONE]\n\n"]
    server.reply(200, first + [gate] + rest)
    stream = model(server, timeout=5).stream([{"role": "user", "content": "x"}], TOOLS)
    ev = next(stream)      # arrives while the server still holds the rest of the stream
    assert isinstance(ev, ToolCallEvent) and ev.call.name == "read_file" and not gate.is_set()
    gate.set()
    events = list(stream)
    assert [e.call.name for e in events if isinstance(e, ToolCallEvent)] == ["run"]
    assert events[-1].reason == "tool_calls"
