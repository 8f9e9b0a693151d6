"""A probe of one skill that an agent cannot work without: copying from its context.

    copy_accuracy(model, n_tokens) -> 0..1        logged with every validation (`copy_acc`)

An agent copies all the time -- a test id from the task into a command, a path and a line
number from grep's output into read_file, the buggy line into edit_file. Transformers copy
with *induction heads* (Olsson et al., 2022): one head marks each token with the token before
it, a second finds the earlier place where the current token occurred and predicts what
followed it there. The probe writes random token sequences twice and measures greedy accuracy
on the second copy: ~0 for a model without such heads, ~1 with them. Two span lengths, so a
head that merely looks a fixed distance back (a shortcut a model can learn from copy data of
one length) does not pass.

What we measured (docs/08-speedrun.md): the models of the 2-core speedrun score 0% after
pretraining and after fine-tuning. Induction heads form after a long plateau; a synthetic
copy task (random spans, each written twice) did not get past it in a few hundred steps at
depth 2-3 -- longer than the CPU budget allows -- which is why the cpu preset's model does not
copy yet, and why it cannot yet solve tasks.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def copy_accuracy(model, n_tokens: int, rows: int = 8, spans: tuple[int, ...] = (24, 48),
                  seed: int = 0) -> float:
    """Greedy accuracy on the second half of random sequences written twice (0..1)."""
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    hits = total = 0
    for span in spans:
        x = torch.randint(0, n_tokens, (rows, span), generator=g)
        seq = torch.cat([x, x], 1).to(device)
        pred = model(seq[:, :-1]).argmax(-1)[:, span:]         # predictions for seq[:, span+1:]
        hits += int((pred == seq[:, span + 1:]).sum())
        total += pred.numel()
    model.train(was)
    return hits / total
