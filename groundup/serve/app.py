"""The HTTP side of `groundup serve`: a hand-written ASGI application.

    client --HTTP--> uvicorn --ASGI (scope, receive, send)--> App.__call__
        -> route -> auth -> read + check the body (protocol.py) -> admission (queue, draining)
        -> backend.stream(...) --events--> JSON, or SSE chunks as they come -> metrics

Design choices:
- The HTTP stack is uvicorn running an ASGI app written out by hand, no web framework. ASGI is
  three things -- a `scope` dict (method, path, headers), `receive()` (body chunks, then
  `http.disconnect`) and `send()` (`http.response.start`, then body chunks) -- and a server
  that streams tokens needs exactly those: chunks as they are generated, and the moment a
  client goes away. A framework would hide both behind routing we need five lines for.
  uvicorn (h11, asyncio) is the plumbing: HTTP parsing, keep-alive, and shutdown.
- Everything async, nothing blocking: the model runs in the scheduler's thread, and the app
  awaits its tokens (backend.py). One event loop holds hundreds of open streams.
- A disconnect is watched for in a task of its own while the answer is produced; when it
  comes, the generation task is cancelled and the sequence leaves the batch at its next step.
- Admission control: a request that would wait behind `max_queue` others gets 429 with
  Retry-After (back-pressure a load balancer understands) rather than a timeout later; while
  draining (SIGTERM) new requests get 503, running streams finish or are cut at the deadline.
- Errors: a client mistake is an OpenAI-shaped 4xx (protocol.APIError); anything else is a
  bug, logged with its traceback and answered with a 500 -- the server itself keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

from groundup.errors import UserError
from groundup.providers.base import Finish, TextDelta, ToolCallEvent
from groundup.serve.metrics import Metrics
from groundup.serve.openapi import openapi
from groundup.serve.protocol import (APIError, ChatResponse, CompletionResponse, bad, parse_chat,
                                     parse_completion)

log = logging.getLogger("groundup.serve")
PAGE = Path(__file__).with_name("chat.html")
ENDPOINTS = ("/", "/health", "/metrics", "/openapi.json", "/v1/models", "/v1/chat/completions",
             "/v1/completions")


class App:
    def __init__(self, backend: Any, name: str, *, api_key: str | None = None, max_queue: int = 64,
                 max_body: int = 4 << 20):
        self.backend, self.name, self.api_key = backend, name, api_key
        self.max_queue, self.max_body = max_queue, max_body
        self.draining = False
        self.created = int(time.time())
        self.metrics = Metrics({
            "groundup_queue_depth": ("Requests waiting for a free slot.", lambda: backend.waiting),
            "groundup_running_sequences": ("Sequences holding a slot (prefilling or decoding).",
                                           lambda: backend.running),
            "groundup_kv_cache_usage_ratio": ("KV-cache positions holding a running sequence's keys "
                                              "and values, over all allocated.", lambda: backend.kv_usage),
        })

    # ------------------------------------------------------------------ ASGI entry
    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else "/v1/models" if path.startswith("/v1/models/") else "other"
        out = _Responder(send)
        try:
            await self._route(scope, receive, out)
        except APIError as e:
            if not out.started:
                await out.json(e.status, e.body(), e.headers)
            out.status = e.status
        except Exception:        # a bug, not the client's fault: say so, keep serving
            log.exception("error while answering %s %s", scope["method"], path)
            if not out.started:
                await out.json(500, APIError(500, "internal server error (the server's log has the details)",
                                             code="internal_error").body())
            out.status = 500
        finally:
            self.metrics.request_done(endpoint, out.status)

    async def _lifespan(self, receive, send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self.backend.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start_drain(self, grace: float) -> None:
        """SIGTERM: refuse new work now; cut what still runs after `grace` seconds."""
        if self.draining:
            return
        self.draining = True
        log.warning("draining: new requests get 503; running streams have %gs to finish", grace)
        asyncio.get_running_loop().call_later(grace, self.backend.cancel_all)

    # ------------------------------------------------------------------ routing
    async def _route(self, scope: dict, receive, out: "_Responder") -> None:
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        gets = {"/": self._page, "/health": self._health, "/metrics": self._metrics,
                "/openapi.json": self._openapi, "/v1/models": self._models}
        posts = {"/v1/chat/completions": self._chat, "/v1/completions": self._completion}
        if path.startswith("/v1/"):
            self._auth(headers)
        if path in gets or path.startswith("/v1/models/"):
            if method not in ("GET", "HEAD"):
                raise APIError(405, f"{path} answers GET, not {method}", code="method_not_allowed",
                               headers={"allow": "GET"})
            handler = gets.get(path) or self._model
            await handler(scope, out)
        elif path in posts:
            if method != "POST":
                raise APIError(405, f"{path} answers POST, not {method}", code="method_not_allowed",
                               headers={"allow": "POST"})
            body = await self._read_json(headers, receive)
            await posts[path](body, receive, out)
        else:
            raise APIError(404, f"no such endpoint: {method} {path} (the API is under /v1: "
                           "/v1/chat/completions, /v1/completions, /v1/models)", code="not_found")

    def _auth(self, headers: dict[str, str]) -> None:
        if self.api_key is None:
            return
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            raise APIError(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY' "
                           "with the key the server was started with (--api-key)", code="invalid_api_key",
                           headers={"www-authenticate": "Bearer"})

    async def _read_json(self, headers: dict[str, str], receive) -> Any:
        ctype = headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise APIError(415, f"the body must be JSON, sent with 'Content-Type: application/json' "
                           f"(got {ctype or 'no content type'!r})", code="unsupported_media_type")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise APIError(413, f"the body is {int(declared)} bytes; this server takes at most {self.max_body}",
                           code="body_too_large")
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise APIError(400, "the client went away before sending the whole body")
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                raise APIError(413, f"the body is over {self.max_body} bytes, this server's limit", code="body_too_large")
            if not msg.get("more_body"):
                break
        raw = b"".join(chunks)
        if not raw.strip():
            raise bad("the request body is empty: send a JSON object", None, "invalid_body")
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            where = f" ({e.msg} at line {e.lineno} column {e.colno})" if isinstance(e, json.JSONDecodeError) else ""
            raise bad(f"the request body is not valid JSON{where}", None, "invalid_json") from None

    # ------------------------------------------------------------------ simple endpoints
    async def _page(self, scope, out) -> None:
        await out.body(200, PAGE.read_bytes(), "text/html; charset=utf-8")

    async def _health(self, scope, out) -> None:
        if self.draining:
            await out.json(503, {"status": "draining"}, {"retry-after": "5"})
        else:
            await out.json(200, {"status": "ok", "model": self.name, "running": self.backend.running,
                                 "waiting": self.backend.waiting})

    async def _metrics(self, scope, out) -> None:
        await out.body(200, self.metrics.render().encode(), "text/plain; version=0.0.4; charset=utf-8")

    async def _openapi(self, scope, out) -> None:
        await out.json(200, openapi(self.name))

    def _model_card(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "groundup",
                "max_model_len": self.backend.context}

    async def _models(self, scope, out) -> None:
        await out.json(200, {"object": "list", "data": [self._model_card()]})

    async def _model(self, scope, out) -> None:
        wanted = scope["path"][len("/v1/models/"):]
        if wanted != self.name:
            raise APIError(404, f"the model '{wanted}' does not exist: this server serves '{self.name}'",
                           "model", "model_not_found")
        await out.json(200, self._model_card())

    # ------------------------------------------------------------------ generation
    def _admit(self, req) -> Any:
        """Refuse what cannot be done before doing any of it; returns the backend's checked input."""
        if self.draining:
            raise APIError(503, "the server is shutting down: retry on another instance",
                           code="shutting_down", headers={"retry-after": "5"})
        try:
            checked = self.backend.check(req)
        except APIError:
            raise
        except UserError as e:                   # the engine's own checks (prompt, sampling)
            raise bad(str(e)) from None
        except Exception as e:
            if type(e).__module__.startswith("jinja2"):   # the model's chat template refused the conversation
                raise bad(f"the model's chat template refused this conversation: {e}", "messages") from None
            raise
        if self.backend.waiting >= self.max_queue:
            raise APIError(429, f"the server is busy ({self.backend.waiting} requests already waiting): "
                           "retry after a second", code="queue_full", headers={"retry-after": "1"})
        return checked

    async def _chat(self, body: Any, receive, out) -> None:
        req = parse_chat(body, self.name)
        checked = self._admit(req)
        resp = ChatResponse(self.name)
        u = req.include_usage

        async def produce():
            finish = None
            async for ev in self.backend.stream(req, checked, self._timer()):
                if isinstance(ev, TextDelta) and ev.text:
                    if req.stream:
                        await out.sse(resp.text_chunk(ev.text, u))
                    else:
                        resp.text.append(ev.text)
                elif isinstance(ev, ToolCallEvent):
                    if req.stream:
                        for c in resp.call_chunks(ev.call, u):
                            await out.sse(c)
                    else:
                        resp.calls.append(ev.call)
                elif isinstance(ev, Finish):
                    finish = ev
            self.metrics.tokens(finish.usage.prompt_tokens, finish.usage.completion_tokens)
            if not req.stream:
                await out.json(200, resp.whole(finish.reason, finish.usage.prompt_tokens,
                                               finish.usage.completion_tokens))
                return
            await out.sse(resp.finish_chunk(finish.reason, u))
            if u:
                await out.sse(resp.usage_chunk(finish.usage.prompt_tokens, finish.usage.completion_tokens))
            await out.sse_done()

        if req.stream:
            await out.start_sse(resp.role_chunk(u))
        await self._until_disconnect(produce(), receive, out)

    async def _completion(self, body: Any, receive, out) -> None:
        req = parse_completion(body, self.name)
        checked = self._admit(req)
        resp = CompletionResponse(self.name)
        u = req.include_usage

        async def produce():
            finish = None
            async for ev in self.backend.stream(req, checked, self._timer()):
                if isinstance(ev, TextDelta) and ev.text:
                    if req.stream:
                        await out.sse(resp.chunk(ev.text, None, u))
                    else:
                        resp.text.append(ev.text)
                elif isinstance(ev, Finish):
                    finish = ev
            self.metrics.tokens(finish.usage.prompt_tokens, finish.usage.completion_tokens)
            if not req.stream:
                await out.json(200, resp.whole(finish.reason, finish.usage.prompt_tokens,
                                               finish.usage.completion_tokens))
                return
            await out.sse(resp.chunk("", finish.reason, u))
            if u:
                await out.sse(resp.usage_chunk(finish.usage.prompt_tokens, finish.usage.completion_tokens))
            await out.sse_done()

        if req.stream:
            await out.start_sse(None)
        await self._until_disconnect(produce(), receive, out)

    def _timer(self):
        """on_token for one request: observes its time to first token, then each gap."""
        t0 = time.perf_counter()
        last = [None]

        def on_token() -> None:
            now = time.perf_counter()
            if last[0] is None:
                self.metrics.ttft.observe(now - t0)
            else:
                self.metrics.itl.observe(now - last[0])
            last[0] = now
        return on_token

    async def _until_disconnect(self, work, receive, out: "_Responder") -> None:
        """Run `work` (producing the answer) until it ends or the client disconnects; a
        disconnect cancels it, which cancels the sequence in the scheduler."""
        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        task, watcher = asyncio.ensure_future(work), asyncio.ensure_future(watch())
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():                  # the client went away first
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                out.status = 499                  # nginx's "client closed request"
                return
            try:
                task.result()
            except Exception:
                if out.started and out.sse_mode:   # mid-stream: the error goes into the stream
                    log.exception("error while streaming")
                    await out.sse(APIError(500, "internal server error while generating",
                                           code="internal_error").body())
                    await out.send({"type": "http.response.body", "body": b"", "more_body": False})
                    out.status = 500
                    return
                raise
        finally:
            for t in (task, watcher):
                t.cancel()


class _Responder:
    """The send side of one request: JSON, plain bodies, or a Server-Sent Events stream."""

    def __init__(self, send):
        self.send = send
        self.started = False
        self.sse_mode = False
        self.status = 200

    async def _start(self, status: int, ctype: str, extra: dict[str, str] | None = None) -> None:
        headers = [(b"content-type", ctype.encode())]
        headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
        if self.sse_mode:
            headers += [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        self.started, self.status = True, status

    async def body(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        await self._start(status, ctype, headers)
        await self.send({"type": "http.response.body", "body": data})

    async def json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        await self.body(status, json.dumps(obj, ensure_ascii=False).encode(), "application/json", headers)

    async def start_sse(self, first: dict[str, Any] | None) -> None:
        self.sse_mode = True
        await self._start(200, "text/event-stream; charset=utf-8")
        if first is not None:
            await self.sse(first)

    async def sse(self, obj: dict[str, Any]) -> None:
        data = b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def sse_done(self) -> None:
        await self.send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
