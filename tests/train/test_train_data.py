"""Shards, the loader and SFT packing, on a real corpus and a real trained tokenizer."""

import json

import numpy as np
import pytest
import torch

from groundup.errors import UserError
from groundup.tokenizer import load_tokenizer
from groundup.train.data import (IGNORE, Loader, PackedRows, TokenWindows, eval_batches, pack_examples,
                                 prepare_data, prepare_sft_data)


@pytest.fixture(scope="module")
def data(corpus_dir, tok_dir, tmp_path_factory):
    tok = load_tokenizer(tok_dir)
    d = prepare_data([corpus_dir], tok, tmp_path_factory.mktemp("data"), val_fraction=0.2, seed=0,
                     progress=False)
    return tok, d


def test_shards_hold_every_document_after_a_bos_and_split_by_document(corpus_dir, data):
    tok, d = data
    meta = json.loads((d / "meta.json").read_text())
    assert meta["dtype"] == "uint16"
    files = [f for f in sorted(corpus_dir.iterdir()) if f.read_text().strip()]   # empty ones are skipped
    assert meta["docs"]["train"] + meta["docs"]["val"] == len(files)
    assert meta["docs"]["val"] >= 1
    texts = {f.read_text(): f for f in files}
    seen = []
    for split in ("train", "val"):
        toks = np.fromfile(d / f"{split}.bin", dtype=np.uint16)
        starts = np.load(d / f"{split}.idx.npy")
        assert len(toks) == meta["tokens"][split]
        ends = list(starts[1:]) + [len(toks)]
        for s, e in zip(starts, ends):
            assert toks[s] == tok.bos_id                       # each document starts with BOS
            assert tok.bos_id not in toks[s + 1:e]             # ...and holds no other
            text = tok.decode(toks[s + 1:e].tolist())
            assert text in texts                               # whole documents, exactly
            seen.append((split, text))
        # bits-per-byte denominator: token bytes add up to the documents' UTF-8 bytes
        tb = np.load(d / "token_bytes.npy")
        assert tb[toks].sum() == meta["bytes"][split]
    by_text = {t: s for s, t in seen}
    assert len(by_text) == len(seen) == len(files)             # no document in both splits


def test_prepare_data_reuses_a_complete_directory_and_rebuilds_a_changed_one(corpus_dir, tok_dir, tmp_path):
    tok = load_tokenizer(tok_dir)
    d = prepare_data([corpus_dir], tok, tmp_path / "d", val_fraction=0.2, progress=False)
    t = (d / "train.bin").stat().st_mtime_ns
    prepare_data([corpus_dir], tok, d, val_fraction=0.2, progress=False)
    assert (d / "train.bin").stat().st_mtime_ns == t           # reused, not rewritten
    prepare_data([corpus_dir], tok, d, val_fraction=0.3, progress=False)
    assert json.loads((d / "meta.json").read_text())["val_fraction"] == 0.3


def test_empty_corpus_is_a_clear_error(tmp_path, tok_dir):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "empty.py").write_text("")
    with pytest.raises(UserError, match="no text"):
        prepare_data([tmp_path / "c"], load_tokenizer(tok_dir), tmp_path / "d", progress=False)
    assert not (tmp_path / "d" / "meta.json").exists()


def _batches(loader, n):
    return [torch.cat([x for x, _ in loader.next_step()]) for _ in range(n)]


def test_loader_is_deterministic_and_resumes_from_its_state(data):
    _, d = data
    ds = TokenWindows(d, "train", 32)
    a = _batches(Loader(ds, 4, 1, seed=1), 6)
    assert all(torch.equal(x, y) for x, y in zip(a, _batches(Loader(ds, 4, 1, seed=1), 6)))
    assert not torch.equal(a[0], _batches(Loader(ds, 4, 1, seed=2), 1)[0])
    l1 = Loader(ds, 4, 1, seed=1)
    _batches(l1, 3)
    l2 = Loader(ds, 4, 1, seed=1)
    l2.load_state_dict(json.loads(json.dumps(l1.state_dict())))
    assert all(torch.equal(x, y) for x, y in zip(a[3:], _batches(l2, 3)))
    x, y = ds.rows(np.array([5]))
    assert torch.equal(x[0, 1:], y[0, :-1])                   # y is x shifted by one


def test_loader_crosses_epochs_with_a_new_permutation(data):
    _, d = data
    ds = TokenWindows(d, "train", 32)
    lo = Loader(ds, 4, 1, seed=0)
    n_steps = ds.n_items // 4 + 2
    _batches(lo, n_steps)
    assert lo.state.epoch == 1 and lo.state.cursor > 0


def test_global_batch_is_the_same_rows_for_any_ranks_and_micro_steps(data):
    _, d = data
    ds = TokenWindows(d, "train", 32)
    one = Loader(ds, 8, 1, seed=3).next_step()[0][0]                  # 1 process, batch 8
    accum = torch.cat([x for x, _ in Loader(ds, 2, 4, seed=3).next_step()])
    assert torch.equal(one, accum)
    ranks = [Loader(ds, 2, 2, seed=3, rank=r, world=2).next_step() for r in range(2)]
    # row order: micro-step, then rank, then row
    merged = torch.cat([ranks[r][m][0] for m in range(2) for r in range(2)])
    assert torch.equal(one, merged)


def test_eval_batches_split_a_fixed_prefix_across_ranks(data):
    _, d = data
    ds = TokenWindows(d, "val", 32)
    whole = torch.cat([x for x, _ in eval_batches(ds, 4, 10)])
    parts = [torch.cat([x for x, _ in eval_batches(ds, 4, 10, r, 2)]) for r in range(2)]
    assert sorted(map(tuple, whole.tolist())) == sorted(map(tuple, torch.cat(parts).tolist()))


def test_too_little_data_for_one_batch_is_a_clear_error(data):
    _, d = data
    ds = TokenWindows(d, "val", 32)
    with pytest.raises(UserError, match="fewer than one global batch"):
        Loader(ds, ds.n_items + 1, 1, seed=0)


def test_packing_keeps_examples_whole_and_masks_padding():
    rng = np.random.default_rng(0)
    exs = []
    for i in range(30):
        n = int(rng.integers(3, 15))
        exs.append((list(range(100 + i, 100 + i + n)), [0] * (n // 2) + [1] * (n - n // 2)))
    ids, mask, trunc = pack_examples(exs, seq_len=31, pad_id=0, seed=0)
    assert ids.shape[1] == 32 and trunc == 0
    assert mask.sum() == sum(sum(m) for _, m in exs)           # every masked-in token, once
    assert ids.shape[0] < len(exs)                             # several examples per row
    flat = [t for row in ids.tolist() for t in row if t]
    assert sorted(flat) == sorted(t for e, _ in exs for t in e)
    assert (ids[mask == 0] == 0).sum() == (ids == 0).sum()      # padding is never learned


def test_sft_rows_ignore_targets_outside_the_mask(tmp_path):
    exs = [([1, 2, 3, 4, 5, 6], [0, 0, 0, 1, 1, 0]), ([7, 8, 9, 10], [0, 1, 1, 1])]
    d = prepare_sft_data(exs, tmp_path / "sft", seq_len=15, pad_id=0, val_fraction=0.0, seed=0)
    rows = PackedRows(d, "train", 15)
    x, y = rows.rows(np.arange(rows.n_items))
    learned = sorted(y[y != IGNORE].tolist())
    assert learned == [4, 5, 8, 9, 10]
    with pytest.raises(UserError, match="packed for seq_len 15"):
        PackedRows(d, "train", 31)
