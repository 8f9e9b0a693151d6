"""A scripted model API over real HTTP, in both wire formats the providers speak: OpenAI Chat
Completions and Anthropic Messages (streamed). It answers each POST with the next scripted
turn and records every request body, so a test can check what the real provider sent.

    with ScriptedAPI("anthropic", turns) as api:     # turns: Turn(...) per request
        ... --model anthropic:claude-sonnet-4-5 --base-url api.url ...
        api.requests[1]["system"]

The external API is what is replaced; the provider, the loop and the tools stay real.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Turn:
    content: str = ""
    calls: list[tuple[str, dict]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)    # in the API's own field names
    status: int = 200                                       # != 200: an error with `content`


def openai_stream(t: Turn) -> bytes:
    chunks: list[dict[str, Any]] = []
    if t.content:
        chunks.append({"choices": [{"index": 0, "delta": {"role": "assistant", "content": t.content}}]})
    for i, (name, args) in enumerate(t.calls):
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": i, "id": f"call_{i}_{name}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}]}}]})
    chunks.append({"choices": [{"index": 0, "delta": {},
                                "finish_reason": "tool_calls" if t.calls else "stop"}]})
    chunks.append({"choices": [], "usage": t.usage or {"prompt_tokens": 100, "completion_tokens": 10}})
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def anthropic_stream(t: Turn, n: int) -> bytes:
    usage = {"input_tokens": 100, "output_tokens": 1, **t.usage}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": {
        "id": f"msg_{n}", "type": "message", "role": "assistant", "content": [],
        "model": "scripted", "usage": {k: v for k, v in usage.items() if k != "output_tokens"}
        | {"output_tokens": 1}}})]
    index = 0
    if t.content:
        events += [("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}}),
                   ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": t.content}}),
                   ("content_block_stop", {"type": "content_block_stop", "index": 0})]
        index = 1
    for i, (name, args) in enumerate(t.calls, index):
        events += [("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                       "type": "tool_use", "id": f"toolu_{n}_{i}", "name": name, "input": {}}}),
                   ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                       "type": "input_json_delta", "partial_json": json.dumps(args)}}),
                   ("content_block_stop", {"type": "content_block_stop", "index": i})]
    events += [("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": "tool_use" if t.calls else "end_turn"},
                                  "usage": {"output_tokens": usage["output_tokens"]}}),
               ("message_stop", {"type": "message_stop"})]
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


class ScriptedAPI:
    def __init__(self, kind: str, turns: list[Turn]):
        assert kind in ("openai", "anthropic")
        self.kind, self.turns, self.requests = kind, list(turns), []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_GET(self):              # the providers' pre-flight checks
                body = {"data": [{"id": "scripted"}]} if api.kind == "openai" else {"id": "scripted"}
                self.reply(200, "application/json", json.dumps(body).encode())

            def do_POST(self):
                api.requests.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                t = api.turns.pop(0) if api.turns else Turn("(script exhausted)")
                if t.status != 200:
                    err = ({"error": {"message": t.content, "type": "invalid_request_error"}}
                           if api.kind == "openai" else
                           {"type": "error", "error": {"type": "invalid_request_error", "message": t.content}})
                    self.reply(t.status, "application/json", json.dumps(err).encode())
                elif api.kind == "openai":
                    self.reply(200, "text/event-stream", openai_stream(t))
                else:
                    self.reply(200, "text/event-stream", anthropic_stream(t, len(api.requests)))

            def reply(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{port}" + ("/v1" if kind == "openai" else "")

    def __enter__(self) -> "ScriptedAPI":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
