"""The official `openai` client (sync and async) against `groundup serve` on loopback: chat
completions streamed and not, a tool call parsed from the model's own output, a tool-call round
trip, usage, /v1/models -- and greedy output equal to `groundup generate` on the same model."""

import asyncio
import json
import subprocess
import sys

import pytest

openai = pytest.importorskip("openai")

from serve_testlib import SAY, Server, our_model, replay_script, scripted_qwen  # noqa: E402

TOOLS = [{"type": "function", "function": {
    "name": "run", "description": "Run a shell command.",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}]


@pytest.fixture(scope="module")
def qwen_server(tmp_path_factory):
    d = scripted_qwen(tmp_path_factory.mktemp("qwen"))
    with Server("--model", str(d), "--name", "qwen-scripted", "--max-batch", "4") as s:
        yield s


@pytest.fixture(scope="module")
def our_dir(tmp_path_factory):
    return our_model(tmp_path_factory.mktemp("ours"))


@pytest.fixture(scope="module")
def our_server(our_dir):
    with Server("--model", str(our_dir), "--name", "tiny", "--max-batch", "4") as s:
        yield s


def test_models_and_a_tool_call_parsed_from_the_engines_output(qwen_server):
    client = openai.OpenAI(base_url=qwen_server.base_url, api_key="unused")
    assert [m.id for m in client.models.list()] == ["qwen-scripted"]

    r = client.chat.completions.create(model="qwen-scripted", messages=[{"role": "user", "content": "list files"}],
                                       tools=TOOLS, temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == SAY
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "run"
    assert json.loads(call.function.arguments) == {"command": "ls -la"}
    assert r.usage.completion_tokens == 3 and r.usage.prompt_tokens > 20    # SAY, CALL, <|im_end|>
    assert r.usage.total_tokens == r.usage.prompt_tokens + 3

    # the same, streamed: the client accumulates the tool-call deltas into the same call
    stream = client.chat.completions.create(model="qwen-scripted", messages=[{"role": "user", "content": "list files"}],
                                            tools=TOOLS, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    text, args, name, finish, usage = "", "", "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            for tc in c.delta.tool_calls or []:
                name += tc.function.name or ""
                args += tc.function.arguments or ""
            finish = c.finish_reason or finish
    assert (text, name, json.loads(args), finish) == (SAY, "run", {"command": "ls -la"}, "tool_calls")
    assert usage.completion_tokens == 3 and usage.prompt_tokens == r.usage.prompt_tokens


def test_sync_and_async_clients_stream_the_same_text_as_one_answer(our_server):
    client = openai.OpenAI(base_url=our_server.base_url, api_key="unused")
    msgs = [{"role": "user", "content": "Hello, how are you?"}]
    whole = client.chat.completions.create(model="tiny", messages=msgs, temperature=0, max_tokens=24)
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage.completion_tokens >= 1

    parts = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="tiny", messages=msgs, temperature=0, max_tokens=24, stream=True) if c.choices]
    assert "".join(parts) == whole.choices[0].message.content

    async def run_async():
        aclient = openai.AsyncOpenAI(base_url=our_server.base_url, api_key="unused")
        async def one():
            out = []
            async for c in await aclient.chat.completions.create(model="tiny", messages=msgs, temperature=0,
                                                                 max_tokens=24, stream=True):
                out += [c.choices[0].delta.content or ""] if c.choices else []
            return "".join(out)
        got = await asyncio.gather(*(one() for _ in range(4)))   # concurrent: one batch
        await aclient.close()
        return got

    assert asyncio.run(run_async()) == [whole.choices[0].message.content] * 4


def test_greedy_completion_equals_groundup_generate(our_server, our_dir):
    prompt = "def add(a, b):"
    p = subprocess.run([sys.executable, "-m", "groundup", "generate", "--model", str(our_dir), "--prompt", prompt,
                        "--max-new-tokens", "20", "--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    want = json.loads(p.stdout)
    client = openai.OpenAI(base_url=our_server.base_url, api_key="unused")
    r = client.completions.create(model="tiny", prompt=prompt, max_tokens=20, temperature=0)
    assert r.choices[0].text == want["text"]
    assert r.usage.completion_tokens == want["usage"]["completion_tokens"]
    assert r.usage.prompt_tokens == want["usage"]["prompt_tokens"]
    assert r.choices[0].finish_reason == want["finish_reason"]


def test_tool_call_round_trip_over_the_wire(tmp_path):
    """The client sends the tool's result back, the model answers: a scripted model (replay:)
    behind the real server; the server's wire format and the client's parsing are real."""
    spec = replay_script(tmp_path / "turns.jsonl", [
        {"content": "", "tool_calls": [{"name": "run", "arguments": {"command": "date"}}]},
        {"content": "It is noon."}])
    with Server("--model", spec) as s:
        client = openai.OpenAI(base_url=s.base_url, api_key="unused")
        msgs = [{"role": "user", "content": "what time is it?"}]
        r = client.chat.completions.create(model="replay", messages=msgs, tools=TOOLS)
        [call] = r.choices[0].message.tool_calls
        assert r.choices[0].finish_reason == "tool_calls" and json.loads(call.function.arguments) == {"command": "date"}
        msgs += [r.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "12:00"}]
        r2 = client.chat.completions.create(model="replay", messages=msgs, tools=TOOLS)
        assert r2.choices[0].message.content == "It is noon." and r2.choices[0].finish_reason == "stop"
        assert r2.choices[0].message.tool_calls is None
