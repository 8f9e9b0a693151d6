"""Real runs in real subprocesses: exact resume after SIGKILL, torchrun (gloo) == one process."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from groundup.io import read_jsonl
from groundup.train.checkpoint import list_checkpoints
from groundup.train.trainer import TrainConfig, pretrain

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}   # same thread count everywhere: same float sums


def cli_args(corpus_dir, tok_dir, out, steps, *extra):
    return [sys.executable, "-m", "groundup.train", "base", "--data", str(corpus_dir),
            "--tokenizer", str(tok_dir), "--depth", "1", "--seq-len", "32", "--batch-size", "4",
            "--steps", str(steps), "--eval-every", "10", "--eval-tokens", "256", "--seed", "7",
            "--out", str(out), "--dtype", "float32", "--device", "cpu", *extra]


def losses(run_dir):
    return {r["step"]: r["loss"] for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r}


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_after_sigkill_is_exact(corpus_dir, tok_dir, tmp_path, optimizer):
    steps = 30
    ref = tmp_path / "ref"
    opt = ("--optimizer", optimizer)
    subprocess.run(cli_args(corpus_dir, tok_dir, ref, steps, "--save-every", "1", "--quiet", *opt),
                   env=ENV, check=True, timeout=300)
    expected = losses(ref)
    assert sorted(expected) == list(range(1, steps + 1))

    run = tmp_path / "killed"
    p = subprocess.Popen(cli_args(corpus_dir, tok_dir, run, steps, "--save-every", "1", "--quiet", *opt),
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        cks = list_checkpoints(run / "checkpoints")
        # a checkpoint counts once its checksum sidecar is written (checkpoint.py): wait for a
        # trusted one at step >= 5, so the resume below must start at 5 or later
        if any(step >= 5 and path.with_suffix(".json").exists() for step, path in cks):
            p.send_signal(signal.SIGKILL)   # mid-run: possibly in the middle of a checkpoint write
            break
        time.sleep(0.01)
    assert p.wait(timeout=60) == -signal.SIGKILL
    killed_at = max(losses(run))
    assert killed_at < steps

    r = subprocess.run(cli_args(corpus_dir, tok_dir, run, steps, "--save-every", "1", "--resume", *opt),
                       env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    resumed_from = int(r.stderr.split("from step ")[1].split()[0])
    assert 5 <= resumed_from < steps
    got = losses(run)
    assert sorted(got) == list(range(1, steps + 1))          # each step once: the tail was trimmed
    assert got == expected                                   # bit-for-bit the same losses
    assert (run / "model.safetensors").exists() and (run / "tokenizer.json").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_run_saves_the_step_it_finished(corpus_dir, tok_dir, tmp_path, signum):
    """Ctrl-C or SIGTERM with no periodic checkpoint due: the run finishes its step, saves it,
    exits 130 / 143, and --resume continues from there to the same losses."""
    steps = 12
    ref = tmp_path / "ref"
    subprocess.run(cli_args(corpus_dir, tok_dir, ref, steps, "--save-every", "0", "--quiet"),
                   env=ENV, check=True, timeout=300)
    expected = losses(ref)

    run = tmp_path / "stopped"
    # a test run in the background has SIGINT ignored, which a child inherits: give it back
    p = subprocess.Popen(cli_args(corpus_dir, tok_dir, run, steps, "--save-every", "0", "--quiet"),
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if (run / "metrics.jsonl").exists() and max(losses(run), default=0) >= 3:
            p.send_signal(signum)
            break
        time.sleep(0.01)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == (143 if signum == signal.SIGTERM else 130), err
    assert "finishing this step to save a checkpoint" in err
    stopped_at = max(losses(run))
    assert 3 <= stopped_at < steps
    assert f"stopped after step {stopped_at} of {steps}" in err
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [stopped_at]   # none periodic

    r = subprocess.run(cli_args(corpus_dir, tok_dir, run, steps, "--save-every", "0", "--resume"),
                       env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"from step {stopped_at}" in r.stderr
    assert losses(run) == expected


def test_truncated_latest_checkpoint_falls_back_on_resume(corpus_dir, tok_dir, tmp_path, capfd):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = TrainConfig(out=str(tmp_path / "run"), data=[str(corpus_dir)], tokenizer=str(tok_dir), depth=1,
                          seq_len=32, batch_size=4, steps=6, save_every=3, eval_every=10, eval_tokens=256,
                          sample_tokens=4, seed=7, quiet=True, device="cpu")
        run = pretrain(cfg)
        expected = losses(run)
        # pretend it stopped after step 6's checkpoint, which then got truncated on disk
        (run / "train_state.json").unlink()
        last = run / "checkpoints" / "step_000006.pt"
        last.write_bytes(last.read_bytes()[:1000])
        capfd.readouterr()
        pretrain(cfg)
        err = capfd.readouterr().err
    finally:
        torch.set_num_threads(n)
    assert "step_000006.pt is unusable" in err and "truncated" in err and "trying step_000003.pt" in err
    assert "from step 3" in err
    assert losses(run) == expected


def test_torchrun_two_gloo_processes_match_one_process(corpus_dir, tok_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    extra = ("--batch-size", "8", "--save-every", "5", "--quiet")
    # the one-process reference runs in this process (one thread, like each torchrun worker)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from groundup.cli import main
        assert main(["train", *cli_args(corpus_dir, tok_dir, one, 5, *extra)[3:]]) == 0
    finally:
        torch.set_num_threads(n)
    r = subprocess.run(cli_args(corpus_dir, tok_dir, two, 5, *extra, "--nproc", "2"), env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = losses(one), losses(two)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5]          # rank 0 alone wrote the metrics
    for s in a:
        assert b[s] == pytest.approx(a[s], rel=1e-5, abs=1e-5)
    assert a[5] < a[1]
    val = [r for r in read_jsonl(two / "metrics.jsonl") if "val_loss" in r]
    val1 = [r for r in read_jsonl(one / "metrics.jsonl") if "val_loss" in r]
    assert [v["val_loss"] for v in val] == pytest.approx([v["val_loss"] for v in val1], rel=1e-5)
