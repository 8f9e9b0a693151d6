"""The inference engine: prefill, decode, sample, stop -- for one prompt or many.

    prompt ids --prefill--> KV cache + first token --decode step--> next token --> ... --> stop

Design choices:
- Prefill runs the whole prompt through the model once, filling the sequence's cache row and
  producing the first token; each decode step then feeds only the last token. Logits are
  computed for the last position only (a 2k-token prompt does not need 2k x V logits).
- Everything is built from one `Batch` of slots: `stream`/`generate` use a batch of one (the
  model's lean path: an int position, no mask), `generate_batch` fills several slots, and the
  continuous-batching `Scheduler` (scheduler.py) adds and removes sequences between steps. So
  single, batched and continuous generation share one code path and give the same tokens.
- Rows finish independently: a finished sequence leaves the batch at once (its slot is
  compacted away), so the batch never carries dead rows through later steps.
- Prefix cache (`Engine(prefix_cache=True)`, what the agent's local models use): a chat or
  agent sends the whole conversation every turn, and each turn's prompt starts with the
  previous turn's prompt and answer. The engine keeps the last sequence's cache row and the
  ids it holds; a new prompt that starts with them prefills only what is new (vLLM's
  automatic prefix caching and llama.cpp's prompt cache, for one conversation at a time).
- Stopping: an EOS id (from the model's config / generation_config, plus per-request stop ids;
  the id is kept in `token_ids` but not in `text`, as transformers does), a stop string (the
  text is cut before it), `max_new_tokens`, or the end of the context ("length").
- Results carry OpenAI-style usage and the timing that benchmarks need: prefill time, decode
  time and decode tokens/s (decode tokens = all generated tokens but the first, which prefill
  produced).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from groundup.engine.cpu_linear import cpu_decode_layout, cpu_pack_linears
from groundup.engine.decode_step import LeanDecode
from groundup.engine.detok import TextStream
from groundup.engine.kvcache import KVCache
from groundup.engine.sampling import Sampler, SamplingParams, sample_rows
from groundup.errors import UserError
from groundup.model import Transformer, load_model, parse_dtype
from groundup.model.llama import compile_model


@dataclass
class TokenEvent:
    token_id: int
    text: str                          # new text ('' while a multi-byte char is incomplete, or no tokenizer)
    finish_reason: str | None = None   # set on a sequence's last event: "stop" | "length" | "cancelled"


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Timing:
    prefill_s: float = 0.0
    decode_s: float = 0.0
    decode_tokens_per_s: float = 0.0


@dataclass
class GenerationResult:
    token_ids: list[int]               # generated ids only (including a final EOS id)
    text: str | None                   # None when the engine has no tokenizer
    finish_reason: str
    usage: Usage
    timing: Timing = field(default_factory=Timing)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sequence:
    """One request in flight: its prompt, sampler, generated tokens, text and stop rules."""

    def __init__(self, engine: "Engine", prompt_ids: list[int], params: SamplingParams):
        self.prompt = engine.check_prompt(prompt_ids)
        self.params = params
        self.sampler = Sampler(params, engine.vocab_size, engine.device, self.prompt)
        self.stop_ids = frozenset(engine.eos_ids) | frozenset(params.stop_ids)
        if params.stop_strings and engine.tokenizer is None:
            raise UserError("stop strings need a tokenizer; this model directory has none")
        self.text_stream = TextStream(engine.tokenizer, params.stop_strings) if engine.tokenizer else None
        self.generated: list[int] = []
        self.finish_reason: str | None = None
        # the last token that may be generated: max_new_tokens, or where the cache row ends
        self.limit = min(params.max_new_tokens, engine.context_len(len(self.prompt)))
        self.cancelled = False
        self.t_start = time.perf_counter()
        self.t_first = self.t_end = 0.0

    @property
    def length(self) -> int:
        """tokens whose k/v are in the cache (the newest generated token is not fed yet)"""
        return len(self.prompt) + len(self.generated) - 1

    def accept(self, token: int) -> TokenEvent:
        """Record a sampled token, decide whether the sequence stops, and return its event."""
        self.generated.append(token)
        self.sampler.observe(token)
        if len(self.generated) == 1:
            self.t_first = time.perf_counter()
        text, hit_stop_string = "", False
        if token in self.stop_ids:
            self.finish_reason = "stop"
        elif self.text_stream is not None:
            text, hit_stop_string = self.text_stream.push(token)
            if hit_stop_string:
                self.finish_reason = "stop"
        if self.finish_reason is None and len(self.generated) >= self.limit:
            self.finish_reason = "length"
        if self.finish_reason is not None:
            self.t_end = time.perf_counter()
            if self.text_stream is not None and not hit_stop_string:
                text += self.text_stream.finish()
        return TokenEvent(token, text, self.finish_reason)

    def result(self) -> GenerationResult:
        n = len(self.generated)
        prefill = self.t_first - self.t_start
        decode = max(self.t_end - self.t_first, 0.0)
        return GenerationResult(
            token_ids=list(self.generated),
            text=self.text_stream.text if self.text_stream is not None else None,
            finish_reason=self.finish_reason or "length",
            usage=Usage(len(self.prompt), n),
            timing=Timing(prefill, decode, (n - 1) / decode if n > 1 and decode > 0 else 0.0),
        )


def reusable_prefix(cached: list[int], prompt: list[int]) -> int:
    """How many leading prompt tokens a cache row holding `cached` can serve: their common
    prefix, less the prompt's last token, which is always fed again (its logits give the
    first new token)."""
    n, limit = 0, min(len(cached), len(prompt) - 1)
    while n < limit and cached[n] == prompt[n]:
        n += 1
    return n


class Batch:
    """Slots 0..n-1 of a KV cache, each running one Sequence; sequences join and leave between steps."""

    def __init__(self, engine: "Engine", max_batch: int, max_len: int):
        self.engine = engine
        self.cache = KVCache(engine.model.config, max_batch, max_len, engine.dtype, engine.device)
        self.seqs: list[Sequence] = []
        self._arange = torch.arange(max_len, device=engine.device)   # (max_len,) reused to build masks
        # called as on_leave(row, seq) while a leaving sequence's row still holds its k/v (the
        # scheduler's prefix cache keeps a copy)
        self.on_leave: Callable[[int, Sequence], None] | None = None

    @property
    def full(self) -> bool:
        return len(self.seqs) >= self.cache.max_batch

    def add(self, seq: Sequence, start: int = 0) -> TokenEvent:
        """Prefill `seq` into the next free slot; returns its first token's event. start > 0:
        the slot already holds the k/v of seq.prompt[:start] (the prefix cache)."""
        if self.full:
            raise RuntimeError("batch is full")
        if len(seq.prompt) + seq.limit - 1 > self.cache.max_len:
            seq.limit = self.cache.max_len - len(seq.prompt) + 1
        row = len(self.seqs)
        seq.t_start = time.perf_counter()        # prefill_s measures prefill, not time spent queued
        idx = torch.tensor([seq.prompt[start:]], device=self.engine.device)          # (1, T - start)
        logits = self.engine.forward(idx, self.cache.views(row, row + 1), start, last_only=True)  # (1, 1, V)
        ev = seq.accept(sample_rows(logits[:, -1], [seq.sampler])[0])
        if seq.finish_reason is None:
            self.seqs.append(seq)
        return ev

    def step(self) -> list[tuple[Sequence, TokenEvent]]:
        """One decode step for every sequence in the batch; finished ones leave the batch."""
        n = len(self.seqs)
        if n == 0:
            return []
        last = torch.tensor([[s.generated[-1]] for s in self.seqs], device=self.engine.device)  # (n, 1)
        if n == 1:   # one row: a plain int position, no mask
            logits = self.engine.decode(last, self.cache.views(0, 1), self.seqs[0].length)
        else:
            pos = torch.tensor([s.length for s in self.seqs], device=self.engine.device)      # (n,)
            L = max(s.length for s in self.seqs) + 1
            # additive mask, built once per step and shared by every layer: 0 where a row may attend
            # (its own positions 0..pos), -inf over the unused tail of shorter rows
            mask = torch.zeros(n, 1, 1, L, dtype=self.engine.dtype, device=self.engine.device)
            mask.masked_fill_((self._arange[:L][None, :] > pos[:, None]).view(n, 1, 1, L), float("-inf"))
            logits = self.engine.decode(last, self.cache.views(0, n), pos, mask)
        tokens = sample_rows(logits[:, -1], [s.sampler for s in self.seqs])               # (n,) ints
        out = [(s, s.accept(t)) for s, t in zip(self.seqs, tokens)]
        self._remove([i for i, s in enumerate(self.seqs) if s.finish_reason is not None])
        return out

    def cancel(self, seq: Sequence) -> None:
        seq.finish_reason, seq.t_end = "cancelled", time.perf_counter()
        self._remove([self.seqs.index(seq)])

    def _remove(self, rows: list[int]) -> None:
        for r in sorted(rows, reverse=True):          # highest first, so the moved-in last row is alive
            if self.on_leave is not None:
                self.on_leave(r, self.seqs[r])
            last = len(self.seqs) - 1
            if r != last:
                self.cache.move_row(last, r, self.seqs[last].length)
                self.seqs[r] = self.seqs[last]
            self.seqs.pop()


class Engine:
    def __init__(self, model: Transformer, tokenizer: Any = None, eos_ids: tuple[int, ...] | list[int] = (),
                 compile: bool = False, prefix_cache: bool = False, pack: bool = True,
                 borrowed: bool = False, lean: bool = True):
        """The engine takes the model over: eval mode, and on CPU the layout of its wide
        weights (cpu_decode_layout) and, with pack=True, a prepacked copy of every float32
        linear weight for multi-row products and big one-row ones (cpu_pack_linears: twice the
        linear weights' memory, ~2x faster batched decode, ~1.1x batch 1 at 100M).
        borrowed=True: the model is only lent (a training run's samples): eval mode, nothing
        else -- its weights keep their layout and no copies are made; the lender puts it back
        in training mode. compile=True: see below. prefix_cache=True: stream() and generate()
        reuse the k/v of the previous sequence's common prefix (one caller at a time).
        lean=True: decode steps on CPU go through the lean step (decode_step.py) instead of the
        model's forward -- the same arithmetic in a fraction of the dispatched ops; lean=False
        keeps the forward (the benchmarks' before/after)."""
        self.model = model.eval()
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        if self.device.type == "cpu" and not borrowed:
            cpu_decode_layout(model)
            if pack:                       # (a compiled forward traces the plain weights)
                cpu_pack_linears(model)
        # compile=True: torch.compile the forward (dynamic shapes: one graph for prefill at any
        # prompt length, one for decode at any position). On CPU it fuses the small ops of a
        # decode step into generated C++ and removes most per-op Python dispatch: bench/engine.py
        # measured 1.3-1.45x eager at batch 1 on the 10M model, for 20-50 s of compiling on the
        # first call -- worth it for a server or a long evaluation, not for one short answer.
        self.forward = model
        if compile:
            # the RoPE table grows on demand; a compiled graph guards on its size, so build it
            # for the whole context now or every growth would recompile
            model.rope(model.config.max_seq_len, self.dtype, self.device)
            self.forward = compile_model(model, dynamic=True)
        # decode steps (one new token per row): the lean step on CPU (decode_step.py: the same
        # arithmetic in a quarter of the dispatched ops), the model's forward otherwise
        self.decode = (LeanDecode(model) if lean and not compile and self.device.type == "cpu"
                       and LeanDecode.supports(model) else self.forward)
        self.tokenizer = tokenizer
        self.eos_ids = tuple(eos_ids)
        self.vocab_size = model.config.vocab_size
        self.max_seq_len = model.config.max_seq_len
        self.prefix_cache = prefix_cache
        self._kept: tuple[Batch, list[int]] | None = None   # the last sequence's cache row, and its ids
        self.reused_tokens = 0                              # prompt tokens not prefilled again, in all

    @torch.no_grad()
    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """New values for the same model's weights, in place (reinforcement learning hands the
        engine its updated policy between rollouts). The CPU layouts follow (a PackedLinear lays
        a changed weight out again); the prefix cache holds k/v of the old weights: dropped."""
        self.model.load_state_dict(state_dict)
        self._kept = None

    @torch.inference_mode()
    def warm_up(self, batched: bool = False) -> float:
        """Run each kind of forward pass once on a throwaway cache -- prefill, one-row decode and,
        with batched=True, the several-row ragged decode -- and return the seconds it took. With
        compile=True this is when torch.compile builds its graphs (tens of seconds on 2 cores,
        minutes on a busy machine): done lazily instead, the build landed inside the first
        request and its decode rate (an issue reporter saw --compile "16x slower" than eager)."""
        t = time.perf_counter()
        # 17 positions, not 16: a cache view's storage offset (layer x rows x heads x 17 x head_dim)
        # must not equal another size of the graph by chance -- with 16 the 10M model's second
        # layer sat at 2048, the RoPE table's length, dynamo's "duck sizing" guarded on that
        # equality and every real request recompiled (docs/lab/2026-12-03-serve-bench.md)
        batch = Batch(self, 2 if batched else 1, 17)
        for n in range(batch.cache.max_batch):
            seq = Sequence(self, [0] * (3 + n), SamplingParams(max_new_tokens=4))
            seq.stop_ids = frozenset()              # whatever the random first tokens are, keep decoding
            batch.add(seq)
        while batch.seqs:                           # several rows, then one row once the first finishes
            if len(batch.seqs) > 1:
                batch.seqs[0].limit = len(batch.seqs[0].generated) + 1
            batch.step()
        return time.perf_counter() - t

    # ------------------------------------------------------------------ helpers
    def check_prompt(self, prompt_ids: list[int]) -> list[int]:
        ids = [int(t) for t in prompt_ids]
        if not ids:
            raise UserError("the prompt is empty: give at least one token")
        bad = [t for t in ids if not 0 <= t < self.vocab_size]
        if bad:
            raise UserError(f"token id {bad[0]} is outside the model's vocabulary (0..{self.vocab_size - 1})")
        if len(ids) >= self.max_seq_len:
            raise UserError(f"the prompt is {len(ids)} tokens but the model's context is {self.max_seq_len}: "
                            "shorten the prompt")
        return ids

    def context_len(self, prompt_len: int) -> int:
        """how many tokens can still be generated after a prompt of this length"""
        return self.max_seq_len - prompt_len

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Text -> prompt ids, starting with the tokenizer's BOS token when it has one (Llama and our
        own models were trained on documents that start with it; Qwen has none)."""
        if self.tokenizer is None:
            raise UserError("this model directory has no tokenizer: pass token ids instead of text")
        ids = list(self.tokenizer.encode(text))
        bos = getattr(self.tokenizer, "bos_id", None)
        if add_bos and bos is not None and ids[:1] != [bos]:
            ids.insert(0, bos)
        return ids

    # ------------------------------------------------------------------ generation
    def _batch_for(self, seq: Sequence) -> tuple[Batch, int]:
        """A batch of one for `seq`, and how many of its prompt's leading tokens the batch's cache
        already holds (0 without the prefix cache)."""
        need = len(seq.prompt) + seq.limit
        kept, self._kept = self._kept, None
        if not self.prefix_cache:
            return Batch(self, 1, need), 0
        n, batch = 0, None
        if kept is not None:
            batch, ids = kept
            n = reusable_prefix(ids, seq.prompt)
        if batch is None or batch.cache.max_len < need:
            # grow geometrically (a conversation only gets longer), carrying the common prefix over
            old = batch
            batch = Batch(self, 1, min(self.max_seq_len, max(need, 2 * old.cache.max_len if old else 0)))
            if n:
                batch.cache.k[:, :, :, :n] = old.cache.k[:, :, :, :n]
                batch.cache.v[:, :, :, :n] = old.cache.v[:, :, :, :n]
        self.reused_tokens += n
        return batch, n

    @torch.inference_mode()
    def _events(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[tuple[Sequence, TokenEvent]]:
        seq = Sequence(self, prompt_ids, params)
        batch, start = self._batch_for(seq)
        consistent = False
        try:
            ev = batch.add(seq, start)
            yield seq, ev
            while batch.seqs:
                for s, ev in batch.step():
                    yield s, ev
            consistent = True
        except GeneratorExit:     # the caller stopped reading between two tokens: the cache is whole
            consistent = True
            raise
        finally:
            if self.prefix_cache and consistent:
                # what the cache row holds: every token fed so far (the last sampled one is not)
                batch.seqs.clear()
                self._kept = (batch, (seq.prompt + seq.generated)[:seq.length])

    def stream(self, prompt_ids: list[int], params: SamplingParams | None = None) -> Iterator[TokenEvent]:
        """Yield one TokenEvent per generated token; the last one has finish_reason set."""
        for _, ev in self._events(prompt_ids, params or SamplingParams()):
            yield ev

    def generate(self, prompt_ids: list[int], params: SamplingParams | None = None) -> GenerationResult:
        seq = None
        for seq, _ in self._events(prompt_ids, params or SamplingParams()):
            pass
        return seq.result()

    @torch.inference_mode()
    def generate_batch(self, prompts: list[list[int]],
                       params: SamplingParams | list[SamplingParams] | None = None,
                       max_batch: int | None = None) -> list[GenerationResult]:
        """Generate for several prompts at once (rows finish independently); results in order."""
        plist = params if isinstance(params, list) else [params or SamplingParams()] * len(prompts)
        if len(plist) != len(prompts):
            raise UserError(f"{len(prompts)} prompts but {len(plist)} sampling params")
        seqs = [Sequence(self, p, sp) for p, sp in zip(prompts, plist)]
        if not seqs:
            return []
        batch = Batch(self, max_batch or len(seqs), max(len(s.prompt) + s.limit for s in seqs))
        waiting = list(seqs)
        while waiting or batch.seqs:
            while waiting and not batch.full:          # refill free slots between steps
                batch.add(waiting.pop(0))
            batch.step()
        return [s.result() for s in seqs]


# ---------------------------------------------------------------------- loading
def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the hardware runs it fast (a CUDA GPU that supports it), else float32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _eos_ids(model_dir: Path, model: Transformer, tokenizer: Any) -> tuple[int, ...]:
    ids = list(model.config.eos_ids)
    gen = model_dir / "generation_config.json"
    if gen.is_file():
        e = json.loads(gen.read_text()).get("eos_token_id")
        ids += [] if e is None else [e] if isinstance(e, int) else list(e)
    tok_eos = getattr(tokenizer, "eos_id", None)
    if tok_eos is not None:
        ids.append(tok_eos)
    return tuple(dict.fromkeys(ids))        # unique, in order


def _load_tokenizer(model_dir: Path) -> Any:
    if not any((model_dir / f).exists() for f in ("tokenizer.json", "groundup_tokenizer.json")):
        return None
    from groundup.tokenizer import load_tokenizer   # the tokenizer layer knows its own formats and HF's
    return load_tokenizer(model_dir)


def load_engine(model_dir: str | Path, dtype: str | torch.dtype | None = None,
                device: str | torch.device | None = None, compile: bool = False,
                prefix_cache: bool = False, lean: bool = True) -> Engine:
    """A model directory -> Engine with its tokenizer (if the directory has one) and EOS ids."""
    model_dir = Path(model_dir)
    dev = torch.device(device) if device not in (None, "auto") else default_device()
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device} but torch sees no CUDA GPU -- use --device cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {device} but this machine has no Apple GPU -- use --device cpu")
    dt = parse_dtype(dtype) or default_dtype(dev)
    model = load_model(model_dir, dtype=dt, device=dev)
    tokenizer = _load_tokenizer(model_dir)
    return Engine(model, tokenizer, _eos_ids(model_dir, model, tokenizer), compile=compile,
                  prefix_cache=prefix_cache, lean=lean)
