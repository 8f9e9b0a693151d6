"""`groundup train rl` killed with SIGKILL mid-run and resumed gives the numbers of a run that
never stopped: the same rewards, losses, KL and gradient norms at every step, the same weights."""

import os
import signal
import subprocess
import sys
import time

from groundup.io import read_jsonl
from groundup.rl.trainer import DETERMINISTIC, format_step

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}      # same thread count everywhere: same float sums


def cmd(practice, out, *extra):
    tasks, _, model = practice
    return [sys.executable, "-m", "groundup", "train", "rl", "--init", str(model), "--tasks", str(tasks),
            "--out", str(out), "--steps", "3", "--group", "4", "--tasks-per-step", "1",
            "--temperature", "1.0", "--batch", "4", "--lr", "1e-3", "--seed", "3", "--max-agent-steps", "4",
            "--turn-tokens", "64", "--quiet", *extra]


def numbers(run):
    return {r["step"]: {k: r[k] for k in DETERMINISTIC} for r in read_jsonl(run / "metrics.jsonl")}


def test_kill_and_resume_gives_the_same_metrics(practice, tmp_path):
    ref = tmp_path / "ref"
    subprocess.run(cmd(practice, ref), env=ENV, check=True, timeout=600, capture_output=True)
    want = numbers(ref)
    assert sorted(want) == [1, 2, 3]
    # some group taught something (if not, the practice model no longer gives mixed rewards at
    # this temperature -- a changed prompt or tool list: recalibrate tests/rl/conftest.py)...
    assert any(r["groups_with_signal"] for r in want.values()), want
    assert any(r["kl"] > 0 for r in want.values())                # ...and the model moved
    table = format_step(ref, 1).splitlines()                       # a step's group, printed
    assert len(table) == 5 and all(line.startswith("train-t1-") for line in table[1:])
    png = tmp_path / "curves.png"                                  # `train plot` knows an RL run
    p = subprocess.run([sys.executable, "-m", "groundup", "train", "plot", str(ref), "-o", str(png)],
                       env=ENV, timeout=300, capture_output=True, text=True)
    assert p.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p.stderr

    run = tmp_path / "killed"
    proc = subprocess.Popen(cmd(practice, run), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    buffer = run / "rollouts" / "step_000002.jsonl"
    deadline = time.monotonic() + 600
    while not (buffer.exists() and buffer.read_text().count("\n") >= 1):   # step 1 done, step 2 running
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before the kill"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "model.safetensors").exists()
    p = subprocess.run(cmd(practice, run, "--resume"), env=ENV, timeout=600, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "resuming" in p.stderr
    assert numbers(run) == want
    assert (run / "model.safetensors").read_bytes() == (ref / "model.safetensors").read_bytes()
    # the rollout buffer holds each attempt once, in both runs alike
    for step in (1, 2, 3):
        name = f"rollouts/step_{step:06d}.jsonl"
        a = sorted((r["group"], r["index"], r["reward"], r["gen_tokens"]) for r in read_jsonl(ref / name))
        b = sorted((r["group"], r["index"], r["reward"], r["gen_tokens"]) for r in read_jsonl(run / name))
        assert a == b and len(a) == 4
