"""Continuous batching: requests join and leave a running batch between decode steps.

A static batch waits for its slowest row; a server cannot, since requests arrive at any time.
Here one background thread owns the model and loops:

    admit waiting requests into free slots (prefill each) -> one decode step for all -> repeat

so a request that arrives mid-generation starts at the next step, and one that finishes frees
its slot at once (vLLM's and llama.cpp's server idea, without paging).

Design choices:
- `submit()` is thread-safe and returns at once with a `RequestHandle`; iterating the handle
  yields the request's TokenEvents as they are produced (a queue per request), `result()`
  waits for the whole GenerationResult. Any thread may submit: an HTTP server's handlers, or
  several agents running concurrently.
- Only the scheduler thread touches the model and the KV cache, so no locks are held during
  compute; the single lock guards the waiting list.
- Each request keeps its own sampler and stop rules (see engine.Sequence), so its tokens are
  the ones it would have got alone. Prefill happens one request at a time (simple, and exact);
  long prompts therefore delay the others' next token by one prefill.
- A failure inside the loop is delivered to every affected handle (re-raised in the caller's
  thread) instead of dying silently in the background.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

import torch

from groundup.engine.engine import Batch, Engine, GenerationResult, Sequence, TokenEvent
from groundup.engine.sampling import SamplingParams

_DONE = object()


class RequestHandle:
    """A submitted request: iterate for its events, or call result()."""

    def __init__(self, scheduler: "Scheduler", seq: Sequence):
        self._scheduler = scheduler
        self.seq = seq
        self._events: queue.Queue = queue.Queue()
        self._done = threading.Event()
        self._error: BaseException | None = None

    def __iter__(self) -> Iterator[TokenEvent]:
        while True:
            item = self._events.get()
            if item is _DONE:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def result(self, timeout: float | None = None) -> GenerationResult:
        if not self._done.wait(timeout):
            raise TimeoutError("generation did not finish in time")
        if self._error is not None:
            raise self._error
        return self.seq.result()

    def cancel(self) -> None:
        """Stop generating for this request at the next step (finish_reason "cancelled")."""
        self.seq.cancelled = True
        self._scheduler._wake()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # called by the scheduler thread
    def _emit(self, ev: TokenEvent) -> None:
        self._events.put(ev)
        if ev.finish_reason is not None:
            self._finish()

    def _finish(self, error: BaseException | None = None) -> None:
        self._error = error
        self._done.set()
        self._events.put(_DONE)


class Scheduler:
    def __init__(self, engine: Engine, max_batch: int = 8, max_len: int | None = None):
        """max_batch slots of max_len tokens each (prompt + output), allocated up front. The
        default caps max_len at 4096: a 32k-context config would otherwise reserve gigabytes."""
        self.engine = engine
        self.max_len = min(max_len or 4096, engine.max_seq_len)
        self.max_batch = max_batch
        self._batch: Batch | None = None              # allocated lazily by the loop thread
        self._waiting: list[RequestHandle] = []
        self._running: dict[int, RequestHandle] = {}  # id(seq) -> handle
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="groundup-scheduler", daemon=True)
        self._thread.start()

    def submit(self, prompt_ids: list[int], params: SamplingParams | None = None) -> RequestHandle:
        """Queue a request (thread-safe); bad input raises here, in the caller's thread."""
        seq = Sequence(self.engine, prompt_ids, params or SamplingParams())
        if len(seq.prompt) >= self.max_len:
            from groundup.errors import UserError
            raise UserError(f"the prompt is {len(seq.prompt)} tokens but this scheduler's context is "
                            f"{self.max_len}")
        handle = RequestHandle(self, seq)
        with self._cond:
            if self._closed:
                raise RuntimeError("the scheduler is closed (or its loop failed)")
            self._waiting.append(handle)
            self._cond.notify()
        return handle

    def close(self) -> None:
        """Stop the loop; requests still running or waiting finish as "cancelled"."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def __enter__(self) -> "Scheduler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def num_running(self) -> int:
        return len(self._running)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    # ------------------------------------------------------------------ the loop thread
    def _loop(self) -> None:
        try:
            with torch.inference_mode():
                self._batch = Batch(self.engine, self.max_batch, self.max_len)
                while True:
                    with self._cond:
                        while not self._closed and not self._waiting and not self._running:
                            self._cond.wait()
                        if self._closed:
                            break
                        admit = []
                        while self._waiting and len(self._batch.seqs) + len(admit) < self.max_batch:
                            admit.append(self._waiting.pop(0))
                    for h in admit:
                        self._admit(h)
                    self._drop_cancelled()
                    for seq, ev in self._batch.step():
                        self._running[id(seq)]._emit(ev)
                        if ev.finish_reason is not None:
                            del self._running[id(seq)]
        except BaseException as e:   # deliver the failure to every caller instead of dying silently
            self._fail_all(e)
            return
        self._fail_all(None)

    def _admit(self, h: RequestHandle) -> None:
        if h.seq.cancelled:
            h.seq.finish_reason = "cancelled"
            h._finish()
            return
        try:
            ev = self._batch.add(h.seq)
        except Exception as e:          # e.g. out of memory for this prompt: fail this request only
            h._finish(e)
            return
        if h.seq.finish_reason is None:
            self._running[id(h.seq)] = h
        h._emit(ev)

    def _drop_cancelled(self) -> None:
        for seq in [s for s in self._batch.seqs if s.cancelled]:
            self._batch.cancel(seq)
            self._running.pop(id(seq))._finish()   # its iterator simply ends; result() says "cancelled"

    def _fail_all(self, error: BaseException | None) -> None:
        with self._cond:
            self._closed = True          # the loop is over: later submits fail fast instead of hanging
            pending = list(self._running.values()) + self._waiting
            self._running, self._waiting = {}, []
        for h in pending:
            if not h.done:
                h.seq.finish_reason = h.seq.finish_reason or "cancelled"
                h._finish(error)
