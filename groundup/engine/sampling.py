"""Sampling: turning one row of logits into the next token.

The pipeline, in Hugging Face's order (so the same settings mean the same thing):
    repetition penalty -> temperature -> top-k -> top-p -> min-p -> draw
and temperature 0 means greedy (argmax), skipping the rest.

Design choices:
- Each request owns its random generator, seeded from `SamplingParams.seed` (or from the OS
  when no seed is given). A request therefore draws the same tokens whether it runs alone, in a
  static batch or joins a continuous batch -- batching never changes a seeded result.
- The common case (every row greedy, no penalty) is a single argmax over the whole batch;
  anything else is processed row by row, since each row may carry different settings.
- Filters set logits to -inf rather than renormalising by hand: softmax does the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from groundup.errors import UserError


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 256
    temperature: float = 0.0        # 0 = greedy
    top_k: int = 0                  # 0 = off
    top_p: float = 1.0              # 1 = off
    min_p: float = 0.0              # 0 = off; drop tokens below min_p * p(most likely token)
    repetition_penalty: float = 1.0  # 1 = off; >1 discourages tokens already in prompt or output
    seed: int | None = None
    stop_ids: tuple[int, ...] = ()   # extra stop token ids, on top of the engine's EOS ids
    stop_strings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise UserError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise UserError(f"top_k must be >= 0 (0 turns it off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise UserError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0.0 <= self.min_p <= 1.0:
            raise UserError(f"min_p must be in [0, 1], got {self.min_p}")
        if self.repetition_penalty <= 0:
            raise UserError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        # accept lists from JSON / callers, store tuples so params stay hashable
        object.__setattr__(self, "stop_ids", tuple(self.stop_ids))
        object.__setattr__(self, "stop_strings", tuple(s for s in self.stop_strings if s))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class Sampler:
    """One request's sampling state: its settings, its generator, the tokens it has seen."""

    def __init__(self, params: SamplingParams, vocab_size: int, device: torch.device,
                 prompt_ids: list[int]):
        self.params = params
        self.plain_greedy = params.greedy and params.repetition_penalty == 1.0
        self.gen: torch.Generator | None = None
        if not params.greedy:
            seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
            self.gen = torch.Generator(device=device).manual_seed(seed)
        self.seen: torch.Tensor | None = None
        if params.repetition_penalty != 1.0:
            self.seen = torch.zeros(vocab_size, dtype=torch.bool, device=device)   # (V,)
            self.seen[torch.tensor(prompt_ids, device=device)] = True

    def observe(self, token: int) -> None:
        if self.seen is not None:
            self.seen[token] = True

    def penalise(self, logits: torch.Tensor) -> torch.Tensor:
        """HF's repetition penalty: shrink positive logits of seen tokens, push negative ones down."""
        if self.seen is None:
            return logits
        r = self.params.repetition_penalty
        return torch.where(self.seen, torch.where(logits > 0, logits / r, logits * r), logits)

    def warp(self, logits: torch.Tensor) -> torch.Tensor:
        """(V,) logits -> (V,) logits with the filtered-out tokens at -inf (temperature applied)."""
        p = self.params
        logits = self.penalise(logits) / p.temperature
        if 0 < p.top_k < logits.shape[-1]:
            kth = torch.topk(logits, p.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if p.top_p < 1.0:
            # ascending sort: drop the tail whose total mass stays within 1 - top_p; keep the top one
            sorted_logits, order = torch.sort(logits)
            drop = sorted_logits.softmax(-1).cumsum(-1) <= 1 - p.top_p
            drop[-1] = False
            logits = logits.masked_fill(drop.scatter(0, order, drop), float("-inf"))
        if p.min_p > 0.0:
            probs = logits.softmax(-1)
            logits = logits.masked_fill(probs < p.min_p * probs.max(), float("-inf"))
        return logits

    def sample(self, logits: torch.Tensor) -> int:
        """logits (V,) float32 -> token id"""
        if self.params.greedy:
            return int(self.penalise(logits).argmax())
        probs = self.warp(logits).softmax(-1)
        return int(torch.multinomial(probs, 1, generator=self.gen))


def sample_rows(logits: torch.Tensor, samplers: list[Sampler]) -> list[int]:
    """logits (B, V) -> one token per row, each with its own sampler."""
    if all(s.plain_greedy for s in samplers):
        # the common case: one op for the whole batch. max's indices, not argmax: the same
        # (first) index, and faster on CPU (docs/lab/2026-12-03-measurements-behind-the-code.md)
        return logits.max(-1).indices.tolist()
    return [s.sample(logits[i]) for i, s in enumerate(samplers)]
