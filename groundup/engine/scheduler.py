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
  the ones it would have got alone. Prefill happens one request at a time (simple, and exact).
- Chunked prefill (`prefill_chunk=N`, what `groundup serve` uses): a prompt longer than N
  tokens is prefilled N tokens per loop turn, between decode steps, in a one-row staging
  cache whose k/v are copied into the batch's slot when the prompt's last chunk runs -- so a
  4k-token prompt delays every running stream by a few chunk-sized steps, not by one long
  stall (vLLM's chunked prefill, in its simplest form). Off by default: a whole prompt at once.
- A caller that cannot block a thread per request (an asyncio server) passes `on_ready` to
  `submit`: called from the loop thread whenever the handle has something new, after which
  `drain()` takes what is there without blocking.
- Prefix cache (`prefix_cache=True`, what the agent's local model uses when it serves several
  conversations at once): an agent sends its whole conversation every turn, so each prompt
  starts with the previous turn's prompt and answer. When a sequence leaves the batch its k/v
  row is copied into a side cache of `max_batch` rows (one per conversation in flight; the least
  recently used row goes first, a row extended by the same conversation is replaced); a new
  prompt takes the row with the longest common prefix and prefills only the rest -- the
  single-conversation prefix cache of engine.py, for N conversations. A copy of a row costs
  far less than prefilling it again (a few MB against a forward pass over ~1-2k tokens).
  Whole-prompt prefill only: a chunked prompt starts from scratch.
- A failure inside the loop is delivered to every affected handle (re-raised in the caller's
  thread) instead of dying silently in the background.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

import torch

from groundup.engine.engine import (Batch, Engine, GenerationResult, Sequence, TokenEvent,
                                    reusable_prefix)
from groundup.engine.kvcache import KVCache
from groundup.engine.sampling import SamplingParams

_DONE = object()


class RequestHandle:
    """A submitted request: iterate for its events, or call result()."""

    def __init__(self, scheduler: "Scheduler", seq: Sequence, on_ready: Callable[[], None] | None = None):
        self._scheduler = scheduler
        self.seq = seq
        self._events: queue.Queue = queue.Queue()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._on_ready = on_ready

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

    def drain(self) -> list[TokenEvent]:
        """The events produced since the last call, without blocking (an empty list when there
        are none yet, or when the handle is done); the loop's failure is raised here."""
        out = []
        while True:
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return out
            if item is _DONE:
                if self._error is not None:
                    raise self._error
                return out
            out.append(item)

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
        elif self._on_ready is not None:
            self._on_ready()

    def _finish(self, error: BaseException | None = None) -> None:
        self._error = error
        self._done.set()
        self._events.put(_DONE)
        if self._on_ready is not None:
            self._on_ready()


class Scheduler:
    def __init__(self, engine: Engine, max_batch: int = 8, max_len: int | None = None,
                 prefill_chunk: int | None = None, prefix_cache: bool = False):
        """max_batch slots of max_len tokens each (prompt + output), allocated up front. The
        default caps max_len at 4096: a 32k-context config would otherwise reserve gigabytes.
        prefill_chunk: prefill prompts longer than this in chunks between decode steps.
        prefix_cache: keep finished sequences' k/v (max_batch more rows) and prefill a prompt
        that starts with one of them from where it ends."""
        self.engine = engine
        self.prefix_cache = prefix_cache
        self._kept: KVCache | None = None             # the prefix cache's rows (loop thread only)
        self._kept_ids: list[list[int]] = []          # the ids each kept row holds, by row
        self._kept_order: list[int] = []              # kept rows, least recently used first
        self.reused_tokens = 0                        # prompt tokens not prefilled again, in all
        self.max_len = min(max_len or 4096, engine.max_seq_len)
        self.max_batch = max_batch
        if prefill_chunk is not None and prefill_chunk < 1:
            raise ValueError(f"prefill_chunk must be >= 1, got {prefill_chunk}")
        self.prefill_chunk = prefill_chunk
        self._batch: Batch | None = None              # allocated lazily by the loop thread
        self._staging: Batch | None = None            # one row, for a long prompt's chunked prefill
        self._prefilling: tuple[RequestHandle, int] | None = None   # that prompt's handle, tokens done
        self._waiting: list[RequestHandle] = []
        self._running: dict[int, RequestHandle] = {}  # id(seq) -> handle
        self.steps = 0                                # decode steps run (for metrics and tests)
        self._cancel_requested = False
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="groundup-scheduler", daemon=True)
        self._thread.start()

    def submit(self, prompt_ids: list[int], params: SamplingParams | None = None,
               on_ready: Callable[[], None] | None = None) -> RequestHandle:
        """Queue a request (thread-safe); bad input raises here, in the caller's thread.
        on_ready: called (from the loop thread) whenever the handle has new events or is done."""
        seq = Sequence(self.engine, prompt_ids, params or SamplingParams())
        if len(seq.prompt) >= self.max_len:
            from groundup.errors import UserError
            raise UserError(f"the prompt is {len(seq.prompt)} tokens but this scheduler's context is "
                            f"{self.max_len}")
        handle = RequestHandle(self, seq, on_ready)
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

    def cancel_all(self) -> None:
        """Cancel every request, running or waiting, at the loop's next turn (a server's drain
        deadline): each finishes as "cancelled", and the scheduler stays open for new ones."""
        with self._cond:
            self._cancel_requested = True
            self._cond.notify()

    def __enter__(self) -> "Scheduler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def num_running(self) -> int:
        """sequences holding a slot (decoding, or being prefilled in chunks)"""
        return len(self._running) + (self._prefilling is not None)

    @property
    def num_waiting(self) -> int:
        """requests queued for a free slot"""
        return len(self._waiting)

    @property
    def kv_tokens(self) -> int:
        """positions of the KV cache holding a running sequence's k/v (of max_batch * max_len)"""
        batch, pre = self._batch, self._prefilling
        used = sum(s.length for s in list(batch.seqs)) if batch is not None else 0
        return used + (pre[1] if pre is not None else 0)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    # ------------------------------------------------------------------ the loop thread
    def _loop(self) -> None:
        try:
            with torch.inference_mode():
                self._batch = Batch(self.engine, self.max_batch, self.max_len)
                if self.prefix_cache:
                    self._batch.on_leave = self._keep
                while True:
                    with self._cond:
                        while not (self._closed or self._waiting or self._running or self._prefilling
                                   or self._cancel_requested):
                            self._cond.wait()
                        if self._closed:
                            break
                        admit = []
                        while self._waiting and self._free_slots() > len(admit):
                            if self._chunked(self._waiting[0]) and (self._prefilling is not None or any(
                                    self._chunked(h) for h in admit)):
                                break             # one chunked prefill at a time, in arrival order
                            admit.append(self._waiting.pop(0))
                        if self._cancel_requested:   # cancel_all(): everything submitted so far
                            self._cancel_requested = False
                            for h in [*self._running.values(), *self._waiting, *admit]:
                                h.seq.cancelled = True
                            if self._prefilling is not None:
                                self._prefilling[0].seq.cancelled = True
                    for h in admit:
                        self._admit(h)
                    if self._prefilling is not None:
                        self._prefill_chunk()
                    self._drop_cancelled()
                    if self._batch.seqs:
                        self.steps += 1
                    for seq, ev in self._batch.step():
                        self._running[id(seq)]._emit(ev)
                        if ev.finish_reason is not None:
                            del self._running[id(seq)]
        except BaseException as e:   # deliver the failure to every caller instead of dying silently
            self._fail_all(e)
            return
        self._fail_all(None)

    def _free_slots(self) -> int:
        return self.max_batch - len(self._batch.seqs) - (self._prefilling is not None)

    def _chunked(self, h: RequestHandle) -> bool:
        return self.prefill_chunk is not None and len(h.seq.prompt) > self.prefill_chunk

    def _admit(self, h: RequestHandle, start: int = 0) -> None:
        if h.seq.cancelled:
            h.seq.finish_reason = "cancelled"
            h._finish()
            return
        if start == 0 and self._chunked(h):
            self._prefilling = (h, 0)          # its chunks run one per loop turn (_prefill_chunk)
            return
        try:
            if start:                          # the staging row holds prompt[:start]: move it to the slot
                self._batch.cache.copy_row_from(self._staging.cache, 0, len(self._batch.seqs), start)
            elif self.prefix_cache:
                start = self._reuse(h.seq.prompt, len(self._batch.seqs))
            ev = self._batch.add(h.seq, start)
        except Exception as e:          # e.g. out of memory for this prompt: fail this request only
            h._finish(e)
            return
        if h.seq.finish_reason is None:
            self._running[id(h.seq)] = h
        h._emit(ev)

    def _keep(self, row: int, seq: Sequence) -> None:
        """A sequence leaves the batch (Batch.on_leave): copy the k/v its row holds into the
        prefix cache, over the row its conversation had (a prefix of it), else the least
        recently used one."""
        ids = (seq.prompt + seq.generated)[:seq.length]    # the last sampled token was never fed
        if not ids:
            return
        if self._kept is None:
            self._kept = KVCache(self.engine.model.config, self.max_batch, self.max_len,
                                 self.engine.dtype, self.engine.device)
        same = [r for r in self._kept_order if ids[:len(self._kept_ids[r])] == self._kept_ids[r]]
        if same:
            dst = same[0]
        elif len(self._kept_ids) < self.max_batch:
            dst = len(self._kept_ids)
            self._kept_ids.append([])
        else:
            dst = self._kept_order[0]
        self._kept.copy_row_from(self._batch.cache, row, dst, len(ids))
        self._kept_ids[dst] = ids
        self._kept_order = [r for r in self._kept_order if r != dst] + [dst]

    def _reuse(self, prompt: list[int], slot: int) -> int:
        """Copy the kept row sharing the longest prefix with `prompt` into `slot`; returns how
        many leading prompt tokens it holds (at least the last one is prefilled again: its logits
        give the first new token)."""
        best, n = -1, 0
        for r in self._kept_order:
            k = reusable_prefix(self._kept_ids[r], prompt)
            if k > n:
                best, n = r, k
        if n:
            self._batch.cache.copy_row_from(self._kept, best, slot, n)
            self._kept_order = [r for r in self._kept_order if r != best] + [best]
            self.reused_tokens += n
        return n

    def _prefill_chunk(self) -> None:
        """Prefill the next chunk of the prompt being staged; its last chunk joins the batch."""
        h, done = self._prefilling
        seq, n = h.seq, self.prefill_chunk
        if seq.cancelled or len(seq.prompt) - done <= n:
            self._prefilling = None
            self._admit(h, done)               # (a cancelled one just finishes)
            return
        if self._staging is None:
            self._staging = Batch(self.engine, 1, self.max_len)
        try:
            idx = torch.tensor([seq.prompt[done:done + n]], device=self.engine.device)     # (1, n)
            self.engine.forward(idx, self._staging.cache.views(0, 1), done, last_only=True)
        except Exception as e:
            self._prefilling = None
            h._finish(e)
            return
        self._prefilling = (h, done + n)

    def _drop_cancelled(self) -> None:
        for seq in [s for s in self._batch.seqs if s.cancelled]:
            self._batch.cancel(seq)
            self._running.pop(id(seq))._finish()   # its iterator simply ends; result() says "cancelled"

    def _fail_all(self, error: BaseException | None) -> None:
        with self._cond:
            self._closed = True          # the loop is over: later submits fail fast instead of hanging
            pending = list(self._running.values()) + self._waiting
            if self._prefilling is not None:
                pending.append(self._prefilling[0])
            self._running, self._waiting, self._prefilling = {}, [], None
        for h in pending:
            if not h.done:
                h.seq.finish_reason = h.seq.finish_reason or "cancelled"
                h._finish(error)
