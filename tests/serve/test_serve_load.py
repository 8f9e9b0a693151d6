"""The server under load, on loopback: 32 concurrent streams through 16 slots all complete;
a client that disconnects mid-stream frees its slot (the metrics show it); a full queue
answers 429 + Retry-After; SIGTERM during load drains (short streams finish, long ones are
cut at the deadline with a proper end) and the process exits 0.

The model answers every chat with SAY repeated until max_tokens (serve_testlib.looping_qwen),
so every stream's length and text are known in advance."""

import asyncio
import signal
import time

import httpx
import pytest

from serve_testlib import SAY, Server, looping_qwen, sse_chunks  # noqa: E402

MSGS = [{"role": "user", "content": "talk"}]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return looping_qwen(tmp_path_factory.mktemp("loop"))


def chat(max_tokens, stream=True):
    return {"model": "loop", "messages": MSGS, "max_tokens": max_tokens, "temperature": 0, "stream": stream,
            **({"stream_options": {"include_usage": True}} if stream else {})}


async def stream_one(client, url, max_tokens):
    """(content deltas, finish_reason, usage, saw [DONE]) of one streamed chat completion"""
    async with client.stream("POST", url + "/v1/chat/completions", json=chat(max_tokens)) as r:
        assert r.status_code == 200, await r.aread()
        body = (await r.aread()).decode()
    chunks = sse_chunks(body)
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    return [d for d in deltas if d], finish, usage, body.rstrip().endswith("data: [DONE]")


def running(server):
    return server.metrics()["groundup_running_sequences"]


def wait_for(pred, timeout=30):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_32_concurrent_streams_and_a_disconnect(model_dir):
    with Server("--model", str(model_dir), "--name", "loop", "--max-batch", "16") as server:
        async def load():
            async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=64)) as client:
                return await asyncio.gather(*(stream_one(client, server.url, 8 + i % 8) for i in range(32)),
                                            return_exceptions=True)
        results = asyncio.run(load())
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == []
        for i, (deltas, finish, usage, done) in enumerate(results):
            n = 8 + i % 8
            assert deltas == [SAY] * n and finish == ["length"] and done
            assert usage[0]["completion_tokens"] == n
        m = server.metrics()
        assert m['groundup_requests_total{endpoint="/v1/chat/completions",status="200"}'] == 32
        assert m["groundup_generation_tokens_total"] == sum(8 + i % 8 for i in range(32))
        assert m["groundup_time_to_first_token_seconds_count"] == 32
        assert m["groundup_inter_token_latency_seconds_count"] == sum(7 + i % 8 for i in range(32))
        assert m["groundup_running_sequences"] == 0 and m["groundup_queue_depth"] == 0

        # a client that goes away mid-stream: its sequence leaves the batch, its slot is free
        with httpx.Client(timeout=60) as client:
            with client.stream("POST", server.url + "/v1/chat/completions", json=chat(4000)) as r:
                lines = r.iter_lines()
                got = [next(lines) for _ in range(6)]          # a few chunks of a 4000-token answer
                assert any(SAY.strip() in x for x in got)
                assert running(server) == 1 and server.metrics()["groundup_kv_cache_usage_ratio"] > 0
        wait_for(lambda: running(server) == 0)
        m = server.metrics()
        assert m['groundup_requests_total{endpoint="/v1/chat/completions",status="499"}'] == 1
        assert m["groundup_kv_cache_usage_ratio"] == 0
        assert m["groundup_generation_tokens_total"] < sum(8 + i % 8 for i in range(32)) + 4000
        r = httpx.post(server.url + "/v1/chat/completions", json=chat(3, stream=False), timeout=60)
        assert r.json()["choices"][0]["message"]["content"] == SAY * 3


def test_a_full_queue_answers_429_with_retry_after(model_dir):
    with Server("--model", str(model_dir), "--name", "loop", "--max-batch", "1", "--max-queue", "1") as server:
        with httpx.Client(timeout=60) as a, httpx.Client(timeout=60) as b:
            with a.stream("POST", server.url + "/v1/chat/completions", json=chat(4000)) as first:
                lines = first.iter_lines()       # (kept: a dropped iterator closes the response)
                next(lines), next(lines)         # it holds the only slot (for seconds)
                with b.stream("POST", server.url + "/v1/chat/completions", json=chat(5)) as second:
                    wait_for(lambda: server.metrics()["groundup_queue_depth"] == 1)
                    r = httpx.post(server.url + "/v1/chat/completions", json=chat(5), timeout=60)
                    assert r.status_code == 429 and r.headers["retry-after"] == "1"
                    assert "busy" in r.json()["error"]["message"]
                    first.close()                              # the slot frees, the queued one runs
                    chunks = sse_chunks("".join(second.iter_text()))
        deltas = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
        assert [d for d in deltas if d] == [SAY] * 5 and chunks[-2]["choices"][0]["finish_reason"] == "length"
        assert chunks[-1]["usage"]["completion_tokens"] == 5
        assert server.metrics()['groundup_requests_total{endpoint="/v1/chat/completions",status="429"}'] == 1


@pytest.mark.slow
def test_sigterm_during_load_drains_and_exits_0(model_dir):
    server = Server("--model", str(model_dir), "--name", "loop", "--max-batch", "8", "--grace", "4")

    async def load():
        async with httpx.AsyncClient(timeout=120) as client:
            tasks = [asyncio.ensure_future(stream_one(client, server.url, n)) for n in [4000] * 2 + [10] * 4]
            await asyncio.sleep(0)
            def admitted():               # all six running, or finished
                m = server.metrics()
                return m["groundup_running_sequences"] + m.get(
                    'groundup_requests_total{endpoint="/v1/chat/completions",status="200"}', 0)
            while admitted() < 6:
                await asyncio.sleep(0.05)
            t0 = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            try:                       # after SIGTERM: no new work (refused, or 503 on a kept connection)
                late = await client.post(server.url + "/v1/chat/completions", json=chat(3, stream=False))
                assert late.status_code == 503
            except httpx.TransportError:
                pass
            results = await asyncio.gather(*tasks)
            return results, time.monotonic() - t0

    try:
        results, took = asyncio.run(load())
        assert server.proc.wait(timeout=30) == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    for deltas, finish, usage, done in results[2:]:      # the short ones finished within the grace period
        assert finish == ["length"] and deltas == [SAY] * 10 and done
    for deltas, finish, usage, done in results[:2]:      # the long ones were cut at the deadline, cleanly
        assert finish == ["abort"] and done and 0 < len(deltas) < 4000
        assert usage[0]["completion_tokens"] == len(deltas)
    assert took < 20
