"""Copy drills: random token sequences written twice, the loss on the second copy.

    copy_examples(n_tokens, vocab, bos_id, seed) -> [(ids, mask), ...]   ~n_tokens in all

Why: an agent copies names it has never seen -- a held-out task's `timber/medal.py` from the
traceback into read_file -- and a small model forgets how during fine-tuning. Its copy probe
(train/probes.py: random tokens written twice) falls from ~30% after pretraining to ~4% after
fine-tuning on oracle trajectories, where every name is one of a few kinds and the model learns
to *predict* names rather than copy them; on held-out tasks it then starts `timber` right and
finishes it as a made-up word (`ti` -> `vir`). Mixed into fine-tuning, the drills keep copying
general: after any token, whatever followed it earlier in the context, for every token of the
vocabulary. They are short, so packing mostly fits them into the padding at the end of rows
that hold a conversation (data.pack_examples): little extra compute.
"""

from __future__ import annotations

import random


def copy_examples(n_tokens: int, vocab: int, bos_id: int, seed: int = 0,
                  spans: tuple[int, int] = (8, 64)) -> list[tuple[list[int], list[int]]]:
    """About n_tokens tokens of drills: BOS, a random span of ids < vocab, the same span again.
    The mask counts the second copy from its second token (its first has no cue to follow)."""
    rng = random.Random(seed)
    out: list[tuple[list[int], list[int]]] = []
    total = 0
    while total < n_tokens:
        span = [rng.randrange(vocab) for _ in range(rng.randint(*spans))]
        ids = [bos_id] + span + span
        mask = [0] * (1 + len(span) + 1) + [1] * (len(span) - 1)
        out.append((ids, mask))
        total += len(ids)
    return out
