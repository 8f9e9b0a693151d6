"""Checkpoints: verified before use, a damaged one refused with a message, the previous one used."""

import torch

from groundup.train.checkpoint import list_checkpoints, load_latest, save_checkpoint


def _state(step):
    return {"step": step, "w": torch.full((64, 64), float(step)), "rng": torch.get_rng_state()}


def test_latest_good_checkpoint_is_loaded_and_old_ones_pruned(tmp_path):
    for s in (10, 20, 30):
        save_checkpoint(tmp_path, s, _state(s), keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [30, 20]
    st = load_latest(tmp_path, warn=lambda m: (_ for _ in ()).throw(AssertionError(m)))
    assert st["step"] == 30 and torch.equal(st["w"], torch.full((64, 64), 30.0))


def test_truncated_checkpoint_is_refused_and_the_previous_used(tmp_path):
    save_checkpoint(tmp_path, 10, _state(10))
    p = save_checkpoint(tmp_path, 20, _state(20))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])                    # truncated on disk
    msgs = []
    st = load_latest(tmp_path, warn=msgs.append)
    assert st["step"] == 10
    assert len(msgs) == 1 and "step_000020.pt" in msgs[0] and "truncated" in msgs[0]
    assert "step_000010.pt" in msgs[0]


def test_corrupt_and_unfinished_checkpoints_are_refused(tmp_path):
    save_checkpoint(tmp_path, 10, _state(10))
    p = save_checkpoint(tmp_path, 20, _state(20))
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF                               # same size, one flipped byte
    p.write_bytes(bytes(data))
    msgs = []
    assert load_latest(tmp_path, warn=msgs.append)["step"] == 10
    assert "SHA-256" in msgs[0]
    # a checkpoint whose sidecar was never written (killed between the two writes)
    p.with_suffix(".json").unlink()
    msgs.clear()
    assert load_latest(tmp_path, warn=msgs.append)["step"] == 10
    assert "sidecar" in msgs[0]


def test_no_usable_checkpoint_means_none(tmp_path):
    assert load_latest(tmp_path / "missing") is None
    p = save_checkpoint(tmp_path, 5, _state(5))
    p.write_bytes(b"")
    msgs = []
    assert load_latest(tmp_path, warn=msgs.append) is None
    assert "no earlier checkpoint" in msgs[0]
