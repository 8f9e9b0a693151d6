"""What the HTTP providers share: one POST that streams Server-Sent Events, with retries.

Both the OpenAI Chat Completions API and the Anthropic Messages API stream their answer as
Server-Sent Events (SSE): a `text/event-stream` body made of blocks separated by blank lines,

    event: content_block_delta                      <- optional event name (Anthropic)
    data: {"type": "content_block_delta", ...}     <- the payload, JSON
                                                    <- a blank line ends the event

OpenAI sends only `data:` lines and ends with `data: [DONE]`.

Design choices:
- httpx directly, no SDK, so the wire is in plain sight. One `httpx.Client` per model.
- Timeouts on every request: 10 s to connect, and a read timeout (default 600 s) on every
  read of the stream -- a server that stops sending mid-answer fails after that long instead
  of hanging. GROUNDUP_HTTP_TIMEOUT and GROUNDUP_HTTP_RETRIES override the defaults. The
  agent's own wall-clock limit (`--max-seconds`) is enforced above this, by base.within.
- Retries with exponential backoff (base * 2^attempt, plus jitter, capped; a server's
  Retry-After is honoured up to the cap) on 429, 5xx, 529 (Anthropic "overloaded"), on
  connection errors and on a stream that breaks before its first event (not on a stall: that
  already waited a whole read timeout) -- but never after an event has been read: once text
  has reached the user a retry would repeat it. Generating is free of side effects on the server, so a retried request is safe.
  `backoff_base` is a parameter so tests do not sleep.
- Every failure becomes a `ProviderError` whose message says what to do: the provider gives
  an `explain(status, body)` function that knows its API's error shapes and returns the
  exception to raise (ContextOverflow, ServerError, ...). A body that is not an event stream,
  or an event that is not JSON, is an error naming the server -- never an empty success.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

import httpx

from groundup.providers.base import ProviderError, ServerError

RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504, 529}


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ProviderError(f"${name} must be a number, got {text!r}") from None
    if value < 0 or value != value:
        raise ProviderError(f"${name} must be zero or more, got {text!r}")
    return value


@dataclass
class HTTPOptions:
    timeout: float = 600.0          # seconds to wait for the next bytes of a stream
    connect_timeout: float = 10.0
    max_retries: int = 4
    backoff_base: float = 1.0       # first retry waits ~this long, then doubles
    backoff_max: float = 30.0

    @classmethod
    def make(cls, timeout: float | None = None, max_retries: int | None = None,
             backoff_base: float = 1.0) -> "HTTPOptions":
        """Options from the constructor's arguments, else the environment, else the defaults."""
        return cls(timeout=timeout if timeout is not None else _env_number("GROUNDUP_HTTP_TIMEOUT", 600.0),
                   max_retries=int(max_retries if max_retries is not None
                                   else _env_number("GROUNDUP_HTTP_RETRIES", 4)),
                   backoff_base=backoff_base)

    def client(self) -> httpx.Client:
        return httpx.Client(timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout))


def check_base_url(base: str, example: str = "") -> str:
    """`base` without a trailing slash, or a ProviderError if it is not an http(s) URL."""
    base = base.rstrip("/")
    parsed = urlparse(base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ProviderError(f"--base-url {base!r} is not an http(s) URL" + (f" (e.g. {example})" if example else ""))
    return base


def error_message(body: bytes) -> str:
    """The human-readable part of an API error body ({"error": {"message": ...}} or text)."""
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body.decode("utf-8", "replace").strip()[:300]
    err = obj.get("error", obj) if isinstance(obj, dict) else obj
    if isinstance(err, dict):
        return str(err.get("message") or err)[:500]
    return str(err)[:500]


def _backoff(attempt: int, opts: HTTPOptions, retry_after: str | None) -> float:
    delay = opts.backoff_base * (2 ** attempt) * (0.5 + random.random() / 2)
    if retry_after:
        try:
            delay = max(delay, float(retry_after))
        except ValueError:
            pass                      # an HTTP date: rare for APIs; keep our own delay
    return min(delay, opts.backoff_max)


class _Retry(Exception):
    """A transient failure before the first event: wait `delay` seconds and send again."""

    def __init__(self, delay: float, why: str):
        super().__init__(why)
        self.delay = delay


def stream_sse(client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any],
               opts: HTTPOptions, explain: Callable[[int, bytes], ProviderError],
               sleep: Callable[[float], None] = time.sleep) -> Iterator[tuple[str | None, str]]:
    """POST `body` and yield (event name or None, data) for each Server-Sent Event of the
    answer, retrying transient failures up to the first event (see the module docstring)."""
    for attempt in range(opts.max_retries + 1):
        last = attempt == opts.max_retries
        started = False               # an event was yielded: from here on, no retry
        try:
            with client.stream("POST", url, headers=headers, json=body) as resp:
                if resp.status_code >= 400:
                    data = resp.read()
                    if resp.status_code in RETRY_STATUSES and not last:
                        raise _Retry(_backoff(attempt, opts, resp.headers.get("retry-after")),
                                     f"HTTP {resp.status_code}")
                    raise explain(resp.status_code, data)
                _check_event_stream(resp, url)
                for item in _events(resp):
                    started = True
                    yield item
                return
        except _Retry as r:
            sleep(r.delay)
        except httpx.ConnectError as e:
            if last:
                raise ServerError(f"cannot connect to {url} ({_reason(e)}): is the server running "
                                  "and the base URL right?") from None
            sleep(_backoff(attempt, opts, None))
        except httpx.ConnectTimeout:
            if last:
                raise ServerError(f"cannot connect to {url} within {opts.connect_timeout:g}s: is the "
                                  "server up and the base URL right?") from None
            sleep(_backoff(attempt, opts, None))
        except httpx.TimeoutException:
            # a stall already cost a whole read timeout: waiting that long again helps no one
            raise ServerError(f"{url} stalled: no data for {opts.timeout:g}s (the read timeout; "
                              "GROUNDUP_HTTP_TIMEOUT sets it)") from None
        except httpx.TransportError as e:       # reset, closed mid-answer, protocol error
            if started or last:
                raise ServerError(f"the stream from {url} broke off "
                                  f"({_reason(e)}{', after retries' if last and not started else ''})") from None
            sleep(_backoff(attempt, opts, None))
    raise AssertionError("unreachable")


def _check_event_stream(resp: httpx.Response, url: str) -> None:
    ctype = resp.headers.get("content-type", "")
    if "text/event-stream" in ctype:
        return
    if "json" in ctype:              # an error object with status 200, or a non-streamed answer
        body = resp.read()
        raise ServerError(f"{url} answered with a JSON body instead of an event stream: "
                          f"{error_message(body)[:200]!r}")
    raise ProviderError(f"{url} answered with {ctype or 'no content type'}, not an event stream: "
                        "is the base URL right (e.g. http://localhost:8000/v1)?")


def _events(resp: httpx.Response) -> Iterator[tuple[str | None, str]]:
    """(event name or None, data) for each SSE event of a streaming response."""
    event: str | None = None
    data: list[str] = []
    for line in resp.iter_lines():
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith(":"):
            continue              # an SSE comment (keep-alive)
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    if data:                      # a server that closes without the final blank line
        yield event, "\n".join(data)


def probe(client: httpx.Client, url: str, headers: dict[str, str],
          timeout: float = 10.0) -> tuple[int, bytes]:
    """One quick GET (no retries), for a provider's `check()` before a session starts. Its
    failures are ProviderErrors (exit 2): before anything ran, a server that is not there is
    most often a setup to fix (not started, wrong port, wrong --base-url)."""
    try:
        resp = client.get(url, headers=headers, timeout=timeout)
    except httpx.ConnectError as e:
        raise ProviderError(f"cannot connect to {url} ({_reason(e)}): is the server running "
                          "and the base URL right?") from None
    except httpx.TimeoutException:
        raise ProviderError(f"{url} did not answer within {timeout:g}s") from None
    except httpx.TransportError as e:
        raise ProviderError(f"{url} closed the connection ({_reason(e)})") from None
    return resp.status_code, resp.content


def _reason(e: Exception) -> str:
    text = str(e)
    if "refused" in text.lower() or "Errno 111" in text:
        return "connection refused"
    return text or type(e).__name__


def parse_data(data: str, url: str) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        raise ServerError(f"{url} sent an event that is not JSON: {data[:120]!r}") from None


def malformed(url: str, what: str) -> ServerError:
    """The error for an answer of the wrong shape: names the server and what was wrong."""
    return ServerError(f"{url} sent a malformed answer: {what} -- is it an OpenAI/Anthropic-"
                       "compatible server, and its version current?")


def field(obj: Any, key: str, kind: type | tuple[type, ...], url: str, where: str,
          default: Any = None) -> Any:
    """obj[key] if it has the expected type (a missing or null key gives `default`), else a
    ServerError saying which field was wrong: validation of a server's answer in one call."""
    if not isinstance(obj, dict):
        raise malformed(url, f"{where} is {type(obj).__name__}, expected an object")
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise malformed(url, f"{where}.{key} is {type(value).__name__}, expected {names}")
    return value
