"""Providers under faults, in process: answers of the wrong shape, streams that stall or end
early, errors typed by class (ContextOverflow, ServerError), and `within`, the deadline that
holds while a provider is blocked. (The fault table in tests/faults runs the same faults
through the `groundup` command.)"""

import threading
import time

import pytest

from groundup.providers.anthropic import AnthropicModel
from groundup.providers.base import (ContextOverflow, DeadlineExceeded, ProviderError, ServerError,
                                     TextDelta, within)
from groundup.providers.openai import OpenAIModel
from providers_http_server import ScriptedServer, sse

USER = [{"role": "user", "content": "x"}]


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.close()


def openai(server, **kw):
    return OpenAIModel("m", base_url=server.url + "/v1", backoff_base=0.001, **kw)


@pytest.mark.parametrize("events,says", [
    ([{"choices": "nope"}], "chunk.choices is str, expected list"),
    ([{"choices": ["x"]}], "choices[] is str, expected an object"),
    ([{"choices": [{"delta": "hi"}]}], "choices[].delta is str"),
    ([{"choices": [{"delta": {"content": 5}}]}], "delta.content is int"),
    ([{"choices": [{"delta": {"tool_calls": {"a": 1}}}]}], "delta.tool_calls is dict"),
    ([{"choices": [{"delta": {"tool_calls": [{"index": "0"}]}}]}], "tool_calls[].index is str"),
    ([{"choices": [], "usage": "lots"}], "chunk.usage is str"),
    ([[1, 2, 3]], "chunk is list"),
])
def test_openai_answers_of_the_wrong_shape_name_the_field(server, events, says):
    server.reply(200, [sse(e) for e in events] + ["data: [DONE]\n\n"])
    with pytest.raises(ServerError, match="malformed answer") as e:
        list(openai(server).stream(USER, []))
    assert says in str(e.value) and server.url in str(e.value)
    assert e.value.exit_code == 1


def test_openai_stream_that_ends_early_is_an_error_not_an_empty_answer(server):
    server.reply(200, [sse({"choices": [{"index": 0, "delta": {"content": "half an ans"}}]})])
    with pytest.raises(ServerError, match="ended before the answer was complete"):
        list(openai(server).stream(USER, []))
    server.reply(200, ["event: ping\n\n", ": keep-alive\n\n"])       # nothing at all
    with pytest.raises(ServerError, match="ended before the answer was complete"):
        list(openai(server).stream(USER, []))


def test_openai_a_stalled_stream_fails_at_the_read_timeout_without_a_retry(server):
    gate = threading.Event()
    server.reply(200, [sse({"choices": [{"index": 0, "delta": {"content": "a"}}]}), gate])
    t0 = time.monotonic()
    with pytest.raises(ServerError, match="stalled"):
        list(openai(server, timeout=0.5).stream(USER, []))
    gate.set()
    assert time.monotonic() - t0 < 9.5        # the server would have held the stream for 10 s
    assert len(server.requests) == 1


def test_errors_are_typed_by_class(server):
    server.reply_json(400, {"error": {"message": "maximum context length is 4096 tokens"}})
    with pytest.raises(ContextOverflow):
        list(openai(server).stream(USER, []))
    for _ in range(2):
        server.reply_json(500, {"error": {"message": "boom"}})
    with pytest.raises(ServerError, match="HTTP 500 even after retries"):
        list(openai(server, max_retries=1).stream(USER, []))
    server.reply_json(200, {"error": {"message": "quota exceeded"}})   # an error dressed as success
    with pytest.raises(ServerError, match="quota exceeded"):
        list(openai(server).stream(USER, []))


def test_retries_are_read_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("GROUNDUP_HTTP_RETRIES", "0")
    server.reply_json(503, {"error": {"message": "busy"}})
    with pytest.raises(ServerError):
        list(openai(server).stream(USER, []))
    assert len(server.requests) == 1
    monkeypatch.setenv("GROUNDUP_HTTP_RETRIES", "many")
    with pytest.raises(ProviderError, match="GROUNDUP_HTTP_RETRIES must be a number"):
        openai(server)


@pytest.mark.parametrize("events,says", [
    ([("content_block_start", {"index": 0})], "without content_block"),
    ([("content_block_delta", {"index": 0, "delta": "x"})], "content_block_delta.delta is str"),
    ([("message_start", {"message": {"usage": {"input_tokens": "many"}}})], "usage.input_tokens is str"),
])
def test_anthropic_events_of_the_wrong_shape(server, events, says):
    import json
    server.reply(200, [f"event: {k}\ndata: {json.dumps({'type': k, **v})}\n\n" for k, v in events])
    m = AnthropicModel("c", base_url=server.url, api_key="k", backoff_base=0.001)
    with pytest.raises(ServerError, match="malformed answer") as e:
        list(m.stream(USER, []))
    assert says in str(e.value)


def test_anthropic_stream_that_ends_early(server):
    server.reply(200, ['event: message_start\ndata: {"type": "message_start", "message": {}}\n\n'])
    m = AnthropicModel("c", base_url=server.url, api_key="k", backoff_base=0.001)
    with pytest.raises(ServerError, match="ended before the answer was complete"):
        list(m.stream(USER, []))


def test_within_gives_up_at_the_deadline_while_the_stream_is_blocked():
    release = threading.Event()

    def blocked():
        yield TextDelta("a")
        release.wait(30)            # a provider stuck on a socket
        yield TextDelta("never")

    got = []
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        for ev in within(blocked(), time.monotonic() + 0.5):
            got.append(ev.text)
    assert got == ["a"] and time.monotonic() - t0 < 10
    release.set()


def test_within_stops_a_generating_stream_and_runs_its_cleanup():
    produced, cleaned = [], threading.Event()

    def generating():
        try:
            for i in range(10_000):
                produced.append(i)
                time.sleep(0.01)        # a local model, one token at a time
                yield TextDelta(str(i))
        finally:
            cleaned.set()               # e.g. the scheduler slot is freed

    with pytest.raises(DeadlineExceeded):
        for _ in within(generating(), time.monotonic() + 0.3):
            pass
    assert cleaned.wait(5)
    n = len(produced)
    time.sleep(0.2)
    assert len(produced) == n < 10_000   # it stopped generating


def test_within_passes_errors_and_the_end_through():
    def failing():
        yield TextDelta("a")
        raise ProviderError("the server said no")
    with pytest.raises(ProviderError, match="said no"):
        list(within(failing(), time.monotonic() + 30))
    assert [e.text for e in within(iter([TextDelta("x")]), time.monotonic() + 30)] == ["x"]
    assert [e.text for e in within(iter([TextDelta("y")]), None)] == ["y"]
