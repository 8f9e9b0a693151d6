"""What the HTTP providers share: one POST that streams Server-Sent Events, with retries.

Both the OpenAI Chat Completions API and the Anthropic Messages API stream their answer as
Server-Sent Events (SSE): a `text/event-stream` body made of blocks separated by blank lines,

    event: content_block_delta                      <- optional event name (Anthropic)
    data: {"type": "content_block_delta", ...}     <- the payload, JSON
                                                    <- a blank line ends the event

OpenAI sends only `data:` lines and ends with `data: [DONE]`.

Design choices:
- httpx directly, no SDK, so the wire is in plain sight. One `httpx.Client` per model.
- Retries with exponential backoff (base * 2^attempt, plus jitter, capped; a server's
  Retry-After is honoured up to the cap) on 429, 5xx, 529 (Anthropic "overloaded") and on
  connection errors -- but only before the first event: once text has reached the user a
  retry would repeat it. `backoff_base` is a parameter so tests do not sleep.
- Every failure becomes a `ProviderError` whose message says what to do: the provider gives
  a `explain(status, body)` function that knows its API's error shapes.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

import httpx

from groundup.providers.base import ProviderError

RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504, 529}


@dataclass
class HTTPOptions:
    timeout: float = 600.0          # seconds to wait for the next bytes of a stream
    connect_timeout: float = 10.0
    max_retries: int = 4
    backoff_base: float = 1.0       # first retry waits ~this long, then doubles
    backoff_max: float = 30.0


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


def post_stream(client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any],
                opts: HTTPOptions, explain: Callable[[int, bytes], str],
                sleep: Callable[[float], None] = time.sleep) -> httpx.Response:
    """POST `body` and return the open streaming response (status 2xx), retrying on
    transient failures. The caller must close the response."""
    for attempt in range(opts.max_retries + 1):
        last = attempt == opts.max_retries
        try:
            resp = client.send(client.build_request("POST", url, headers=headers, json=body),
                               stream=True)
        except httpx.ConnectError as e:
            if last:
                raise ProviderError(f"cannot connect to {url} ({_reason(e)}): is the server running "
                                    "and the base URL right?") from None
            sleep(_backoff(attempt, opts, None))
            continue
        except httpx.TimeoutException:
            if last:
                raise ProviderError(f"{url} did not answer within the timeout "
                                    f"({opts.connect_timeout:g}s to connect, {opts.timeout:g}s to respond)") from None
            sleep(_backoff(attempt, opts, None))
            continue
        if resp.status_code < 400:
            return resp
        data = resp.read()
        resp.close()
        if resp.status_code in RETRY_STATUSES and not last:
            sleep(_backoff(attempt, opts, resp.headers.get("retry-after")))
            continue
        raise ProviderError(explain(resp.status_code, data))
    raise AssertionError("unreachable")


def probe(client: httpx.Client, url: str, headers: dict[str, str],
          timeout: float = 10.0) -> tuple[int, bytes]:
    """One quick GET (no retries), for a provider's `check()` before a session starts."""
    try:
        resp = client.get(url, headers=headers, timeout=timeout)
    except httpx.ConnectError as e:
        raise ProviderError(f"cannot connect to {url} ({_reason(e)}): is the server running "
                            "and the base URL right?") from None
    except httpx.TimeoutException:
        raise ProviderError(f"{url} did not answer within {timeout:g}s") from None
    return resp.status_code, resp.content


def _reason(e: Exception) -> str:
    text = str(e)
    if "refused" in text.lower() or "Errno 111" in text:
        return "connection refused"
    return text or type(e).__name__


def sse_events(resp: httpx.Response, url: str) -> Iterator[tuple[str | None, str]]:
    """(event name or None, data) for each SSE event of a streaming response."""
    ctype = resp.headers.get("content-type", "")
    if "text/event-stream" not in ctype and "json" not in ctype:
        raise ProviderError(f"{url} answered with {ctype or 'no content type'}, not an event stream: "
                            "is the base URL right (e.g. http://localhost:8000/v1)?")
    event: str | None = None
    data: list[str] = []
    try:
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
    except httpx.TimeoutException:
        raise ProviderError(f"the stream from {url} stalled (no data for the read timeout)") from None
    except httpx.TransportError as e:
        raise ProviderError(f"the stream from {url} broke off ({e or type(e).__name__})") from None


def parse_data(data: str, url: str) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        raise ProviderError(f"{url} sent an event that is not JSON: {data[:120]!r}") from None
