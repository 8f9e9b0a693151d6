"""What answers a request: our engine behind a continuous-batching scheduler, or a replay script.

    EngineBackend:  messages --chat format--> ids --Scheduler (one batch for every request)-->
                    token events --(asyncio, no thread per request)--> chat parser --> events
    ReplayBackend:  the next scripted turn (groundup/providers/replay.py), for tests and demos

Both stream the events of the providers' protocol -- `TextDelta`, `ToolCallEvent`, and one
final `Finish(reason, usage)` -- as an async iterator, and call `on_token()` once per
generated token (the app times the first and the gaps for its latency histograms).

Design choices:
- One engine and one `Scheduler` serve every request: a new request joins the running batch
  at the next decode step, a finished one frees its slot at once, and prompts longer than
  `prefill_chunk` tokens are prefilled a chunk per step so they never stall the other streams.
- The chat format comes from `LocalModel` (groundup/providers/local.py), the same code that
  renders prompts and parses tool calls for the agent: a model served here sees exactly the
  prompt it would see in-process. Only the generation loop is the server's own, because it
  must not block the event loop: the scheduler's `on_ready` wakes an asyncio.Event.
- Leaving the iterator early (the client went away, the server is draining) cancels the
  sequence: the scheduler drops it at its next step and its cache slot is free again.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from groundup.providers.base import Event, Finish, TextDelta, ToolCallEvent, Usage
from groundup.serve.protocol import Request, bad

OnToken = Callable[[], None]


class EngineBackend:
    kind = "engine"

    def __init__(self, model_dir: str | Path, *, max_batch: int = 16, max_len: int | None = None,
                 prefill_chunk: int = 256, default_temperature: float = 1.0,
                 dtype: str | None = None, device: str | None = None, compile: bool = False):
        from groundup.engine.scheduler import Scheduler
        from groundup.providers.local import LocalModel

        self.local = LocalModel(model_dir, dtype=dtype, device=device)
        self.engine = self.local.engine
        if compile:
            from groundup.model.llama import compile_model
            self.engine.model.rope(self.engine.max_seq_len, self.engine.dtype, self.engine.device)
            self.engine.forward = compile_model(self.engine.model, dynamic=True)
            self.engine.warm_up(batched=True)       # compile before the first request, not inside it
        self.scheduler = Scheduler(self.engine, max_batch=max_batch, max_len=max_len,
                                   prefill_chunk=prefill_chunk)
        self.context = self.scheduler.max_len          # prompt + answer, per request
        self.default_temperature = default_temperature
        self.max_batch = max_batch

    # -- gauges for /metrics and /health
    @property
    def waiting(self) -> int:
        return self.scheduler.num_waiting

    @property
    def running(self) -> int:
        return self.scheduler.num_running

    @property
    def kv_usage(self) -> float:
        return self.scheduler.kv_tokens / (self.max_batch * self.context)

    def close(self) -> None:
        self.scheduler.close()

    # -- requests
    def prompt_ids(self, req: Request) -> list[int]:
        if req.prompt is None:
            return self.local.prompt_ids(req.messages, req.tools)
        if isinstance(req.prompt, str):
            return self.engine.encode(req.prompt)
        bad_ids = [t for t in req.prompt if not 0 <= t < self.engine.vocab_size]
        if bad_ids:
            raise bad(f"token id {bad_ids[0]} in 'prompt' is outside the vocabulary (0..{self.engine.vocab_size - 1})",
                      "prompt")
        return list(req.prompt)

    def sampling(self, req: Request, n_prompt: int):
        """The request's SamplingParams; a 400 when prompt + max_tokens do not fit the context."""
        from groundup.engine.sampling import SamplingParams

        room = self.context - n_prompt
        if room < 1:
            raise bad(f"the prompt is {n_prompt} tokens but this server's context is {self.context} tokens: "
                      "shorten the conversation", "messages" if req.prompt is None else "prompt",
                      "context_length_exceeded")
        if req.max_tokens is not None and req.max_tokens > room:
            raise bad(f"max_tokens is {req.max_tokens} but only {room} tokens are left in the context "
                      f"({self.context} tokens, {n_prompt} of them the prompt): ask for at most {room}",
                      "max_tokens", "context_length_exceeded")
        temperature = self.default_temperature if req.temperature is None else req.temperature
        chat = req.prompt is None
        return SamplingParams(max_new_tokens=req.max_tokens or room, temperature=temperature,
                              top_p=max(req.top_p, 1e-6), seed=req.seed, stop_strings=req.stop,
                              stop_ids=self.local.stop_ids if chat else ())

    def check(self, req: Request) -> tuple[list[int], Any]:
        """Everything that can be refused before any work: prompt ids and sampling params."""
        ids = self.prompt_ids(req)
        return ids, self.sampling(req, len(ids))

    async def stream(self, req: Request, checked: tuple[list[int], Any], on_token: OnToken) -> AsyncIterator[Event]:
        ids, params = checked
        chat = req.prompt is None
        parser = self.local.parser(req.tools) if chat else None
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def wake() -> None:                          # called from the scheduler's thread
            try:
                loop.call_soon_threadsafe(ready.set)
            except RuntimeError:                     # the loop is closed: nobody is listening
                pass

        handle = self.scheduler.submit(ids, params, on_ready=wake)
        n, finish, calls = 0, "stop", 0
        try:
            while True:
                await ready.wait()
                ready.clear()
                done = handle.done
                for ev in handle.drain():
                    n += 1
                    on_token()
                    if ev.finish_reason:
                        finish = ev.finish_reason
                    if not chat:
                        if ev.text:
                            yield TextDelta(ev.text)
                        continue
                    for out in self.local._feed(parser, ev.token_id, ev.text):
                        calls += isinstance(out, ToolCallEvent)
                        yield out
                if done:
                    break
        finally:
            if not handle.done:
                handle.cancel()
        for out in parser.finish() if chat else []:
            calls += isinstance(out, ToolCallEvent)
            yield out
        if handle.seq.finish_reason == "cancelled":   # cut by the drain deadline (it sends no event)
            finish = "abort"
        elif calls and finish != "length":
            finish = "tool_calls"
        yield Finish(finish, Usage(len(ids), n))

    def cancel_all(self) -> None:
        """Draining is over: every running and waiting sequence finishes now ("abort")."""
        self.scheduler.cancel_all()


class ReplayBackend:
    """`replay:FILE`: each chat request plays the script's next turn, streamed word by word."""
    kind = "replay"
    context = 1 << 20
    waiting = running = 0
    kv_usage = 0.0

    def __init__(self, path: str | Path):
        from groundup.providers.replay import ReplayModel
        self.model = ReplayModel(path)
        self.lock = threading.Lock()       # the script's position is shared by all requests

    def close(self) -> None:
        pass

    def cancel_all(self) -> None:
        pass

    def check(self, req: Request) -> tuple[list[int], Any]:
        return [], None

    async def stream(self, req: Request, checked: Any, on_token: OnToken) -> AsyncIterator[Event]:
        messages = req.messages or [{"role": "user", "content": req.prompt if isinstance(req.prompt, str) else ""}]
        with self.lock:
            events = list(self.model.stream(messages, req.tools))
        n = 0
        for ev in events:
            if isinstance(ev, TextDelta):
                # streamed in words, like a model's tokens, so clients see real deltas
                words = ev.text.split(" ")
                for i, w in enumerate(words):
                    n += 1
                    on_token()
                    yield TextDelta(w + (" " if i < len(words) - 1 else ""))
                    await asyncio.sleep(0)
            elif isinstance(ev, ToolCallEvent):
                n += 1
                on_token()
                yield ev
            elif isinstance(ev, Finish):
                yield Finish(ev.reason, Usage(ev.usage.prompt_tokens, n))


def load_backend(spec: str, **options: Any) -> "EngineBackend | ReplayBackend":
    """`replay:FILE`, or a model directory (optionally written `local:DIR`)."""
    from groundup.errors import UserError
    if spec.startswith("replay:"):
        return ReplayBackend(spec[len("replay:"):])
    path = Path(spec[len("local:"):] if spec.startswith("local:") else spec)
    if not path.exists():
        raise UserError(f"--model {spec}: {path} not found (give a model directory, or replay:FILE)")
    return EngineBackend(path, **options)

