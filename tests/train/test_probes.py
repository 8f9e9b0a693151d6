"""The copy probe tells a model that copies from one that does not."""

import torch

from groundup.model.config import ModelConfig
from groundup.model.llama import Transformer
from groundup.train.probes import copy_accuracy


class Induction(torch.nn.Module):
    """A perfect induction head written by hand: predict whatever followed the previous
    occurrence of the current token (an external reference, not one of our layers)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        out = torch.zeros(*idx.shape, self.vocab)
        for b, row in enumerate(idx.tolist()):
            last = {}
            for i, t in enumerate(row):
                if t in last:
                    out[b, i, row[last[t] + 1]] = 1.0
                last[t] = i
        return out


class LookBack(Induction):
    """Predicts the token a fixed distance back: right for one span length only."""

    def forward(self, idx):
        out = torch.zeros(*idx.shape, self.vocab)
        for i in range(24, idx.shape[1]):
            out[torch.arange(idx.shape[0]), i, idx[:, i - 23]] = 1.0
        return out


def test_copy_accuracy_separates_copying_from_not_copying():
    assert copy_accuracy(Induction(1000), 1000) > 0.95
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_depth(1, 1032, max_seq_len=128))
    model.init_weights()
    assert copy_accuracy(model, 1000) < 0.05
    # a fixed-offset shortcut passes one span length, not both
    assert 0.3 < copy_accuracy(LookBack(1000), 1000) < 0.7
