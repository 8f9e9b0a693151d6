"""Copy drills: well-formed, and packed into the training rows only."""

import json

import numpy as np

from groundup.train.copy_data import copy_examples
from groundup.train.data import prepare_sft_data


def test_drills_are_a_span_written_twice_with_the_loss_on_the_second_copy():
    drills = copy_examples(5000, vocab=300, bos_id=300, seed=1)
    assert sum(len(ids) for ids, _ in drills) >= 5000
    for ids, mask in drills:
        n = (len(ids) - 1) // 2
        assert ids[0] == 300 and ids[1:1 + n] == ids[1 + n:] and max(ids[1:]) < 300
        assert len(mask) == len(ids) and sum(mask) == n - 1
        assert mask[:n + 2] == [0] * (n + 2)            # nothing before the copy's second token
    assert copy_examples(500, 300, 300, seed=1) == copy_examples(500, 300, 300, seed=1)
    assert copy_examples(500, 300, 300, seed=1) != copy_examples(500, 300, 300, seed=2)


def test_drills_go_to_the_training_rows_only(tmp_path):
    convs = [([7] * 40, [0] * 20 + [1] * 20) for _ in range(20)]
    drills = copy_examples(600, vocab=50, bos_id=99, seed=0)
    prepare_sft_data(convs, tmp_path, seq_len=255, pad_id=0, val_fraction=0.25, train_extra=drills)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["val"]["examples"] == 5 and meta["train"]["examples"] == 15 + len(drills)
    assert meta["train"]["extra_examples"] == len(drills)
    val = np.load(tmp_path / "val.ids.npy")
    assert not np.isin(val, [99]).any()                 # no drill's BOS in validation
    train = np.load(tmp_path / "train.ids.npy")
    assert (train == 99).sum() == len(drills)
