"""Probes of what an agent cannot work without: copying from its context, whole turns.

    copy_accuracy(model, n_tokens) -> 0..1        logged with every validation (`copy_acc`)
    turn_hits(pred, y) -> (turns, exact)          fine-tuning validation (`val_turn_acc`)

An agent copies all the time -- a test id from the task into a command, a path and a line
number from grep's output into read_file, the buggy line into edit_file. Transformers copy
with *induction heads* (Olsson et al., 2022): one head marks each token with the token before
it, a second finds the earlier place where the current token occurred and predicts what
followed it there. The probe writes random token sequences twice and measures greedy accuracy
on the second copy: ~0 for a model without such heads, ~1 with them. Two span lengths, so a
head that merely looks a fixed distance back (a shortcut a model can learn from copy data of
one length) does not pass.

Models of the 2-core speedrun trained from a plain init score ~0 here after pretraining and
after fine-tuning: induction heads form after a long plateau, longer than the CPU budget. The
presets therefore write the circuit into the initial weights (train/circuits.py): such a model
starts near 1, drops while the embeddings of rare tokens are still random (this probe draws
from the whole vocabulary) and climbs back during training (the curves:
docs/lab/2026-12-03-speedrun-runs.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from groundup.train.data import IGNORE


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


def turn_hits(pred: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """(B, T) greedy predictions and targets -> (turns, turns reproduced exactly). A turn is a
    run of consecutive targets that count -- in fine-tuning rows, one assistant turn (its text,
    its tool calls, its end-of-turn). Exact under teacher forcing means greedy decoding, given
    the same conversation so far, would write that whole turn: the test id copied right, the
    edit's old_string to the character. It moves long before whole tasks get solved."""
    valid = y != IGNORE
    start = valid & ~F.pad(valid[:, :-1], (1, 0), value=False)      # first target of each run
    n = int(start.sum())
    if n == 0:
        return 0, 0
    run = (torch.cumsum(start.flatten().long(), 0) - 1)[valid.flatten()]   # run index per target
    wrong = (pred != y).flatten()[valid.flatten()].long()
    bad = torch.zeros(n, dtype=torch.long).index_add_(0, run, wrong)
    return n, int((bad == 0).sum())
