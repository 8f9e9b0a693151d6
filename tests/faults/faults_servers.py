"""Servers that misbehave on purpose, on 127.0.0.1, for the fault table.

`FaultServer(mode)` answers like an OpenAI-compatible server (GET /v1/models, POST
/v1/chat/completions) or, for modes starting with "anthropic-", like the Messages API
(GET /v1/models/NAME, POST /v1/messages) -- except in the way `mode` names:

    ok                  a well-formed streamed answer ("done"), then [DONE]
    stall               the chat request is accepted and never answered (headers never sent)
    stall-mid-stream    one chunk of text, then silence
    close-mid-stream    one chunk of text, then the connection is closed (no [DONE])
    reset-then-ok       the first chat request's connection is closed without an answer
    malformed-sse       an event whose data is not JSON
    wrong-shape         {"choices": "nope"} then [DONE]
    json-not-json       HTTP 200, Content-Type application/json, a body that is not JSON
    not-json-body       HTTP 200, text/event-stream, plain text instead of events
    html                HTTP 200 text/html (the base URL points at a web page)
    status-500          HTTP 500 on every chat request
    429-then-ok         HTTP 429 (Retry-After: 0) once, then a good answer
    401                 the key is refused, already by GET /models
    unknown-model       GET /models lists another model
    anthropic-ok / anthropic-overloaded-then-ok / anthropic-missing-block / anthropic-error-event
    anthropic-cut       the Anthropic stream ends without message_stop or stop_reason

Each mode is a few lines; `requests` counts the chat requests so a test can see retries.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def sse(obj) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return f"data: {data}\n\n".encode()


def openai_turn(text: str) -> bytes:
    return (sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]})
            + sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            + sse({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2}})
            + sse("[DONE]"))


def anthropic_event(kind: str, obj: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **obj})}\n\n".encode()


def anthropic_turn(text: str, stop: bool = True) -> bytes:
    out = (anthropic_event("message_start", {"message": {"usage": {"input_tokens": 5, "output_tokens": 1}}})
           + anthropic_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
           + anthropic_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}})
           + anthropic_event("content_block_stop", {"index": 0}))
    if stop:
        out += (anthropic_event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}})
                + anthropic_event("message_stop", {}))
    return out


class FaultServer:
    def __init__(self, mode: str):
        self.mode = mode
        self.requests = 0
        self.release = threading.Event()      # set at close: a stalled handler may then end
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def send(self, status: int, ctype: str, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if body:
                    self.wfile.write(body)
                    self.wfile.flush()

            def do_GET(self):
                if outer.mode == "401":
                    return self.send(401, "application/json",
                                     json.dumps({"error": {"message": "invalid key"}}).encode())
                if outer.mode.startswith("anthropic-"):
                    return self.send(200, "application/json", json.dumps({"id": "claude-t"}).encode())
                served = "qwen2.5:latest" if outer.mode == "unknown-model" else "m"
                self.send(200, "application/json", json.dumps({"data": [{"id": served}]}).encode())

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.requests += 1
                n, mode = outer.requests, outer.mode
                if mode.startswith("anthropic-"):
                    return self.anthropic(mode, n)
                if mode == "stall":
                    outer.release.wait(120)
                    return
                if mode == "reset-then-ok" and n == 1:
                    self.close_now()
                    return
                if mode == "status-500":
                    return self.send(500, "application/json",
                                     json.dumps({"error": {"message": "internal boom"}}).encode())
                if mode == "429-then-ok" and n == 1:
                    return self.send(429, "application/json",
                                     json.dumps({"error": {"message": "slow down"}}).encode(),
                                     {"Retry-After": "0"})
                if mode == "json-not-json":
                    return self.send(200, "application/json", b"this is not json")
                if mode == "html":
                    return self.send(200, "text/html", b"<html>hello</html>")
                if mode == "not-json-body":
                    return self.send(200, "text/event-stream", b"garbage\nmore garbage\n")
                first = sse({"choices": [{"index": 0, "delta": {"content": "partial "}}]})
                if mode == "stall-mid-stream":
                    self.send(200, "text/event-stream", first)
                    outer.release.wait(120)
                    return
                if mode == "close-mid-stream":
                    self.send(200, "text/event-stream", first)
                    self.close_now()
                    return
                if mode == "malformed-sse":
                    return self.send(200, "text/event-stream", first + b"data: {not json at all\n\n")
                if mode == "wrong-shape":
                    return self.send(200, "text/event-stream", sse({"choices": "nope"}) + sse("[DONE]"))
                self.send(200, "text/event-stream", openai_turn("done"))    # ok, *-then-ok

            def anthropic(self, mode: str, n: int):
                if mode == "anthropic-overloaded-then-ok" and n == 1:
                    return self.send(529, "application/json", json.dumps(
                        {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}).encode(),
                        {"Retry-After": "0"})
                if mode == "anthropic-missing-block":
                    return self.send(200, "text/event-stream", anthropic_event(
                        "message_start", {"message": {}}) + anthropic_event("content_block_start", {"index": 0}))
                if mode == "anthropic-error-event":
                    return self.send(200, "text/event-stream", anthropic_event(
                        "error", {"error": {"type": "api_error", "message": "kaput"}}))
                if mode == "anthropic-cut":
                    return self.send(200, "text/event-stream", anthropic_turn("half", stop=False))
                self.send(200, "text/event-stream", anthropic_turn("done"))

            def close_now(self):
                """Drop the connection with nothing more sent (a crash, a proxy reset)."""
                self.wfile.flush()
                self.connection.close()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        time.sleep(0.05)
        self.httpd.shutdown()
        self.httpd.server_close()
