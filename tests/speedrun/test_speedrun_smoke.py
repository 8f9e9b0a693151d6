"""The whole pipeline, for real: `groundup speedrun --preset smoke`, killed mid-pretraining
with SIGKILL, then started again -- it must resume and complete, and write the report card.
The success rate of the smoke model is reported by the run, not asserted (it is too small
to solve tasks)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _speedrun(out: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "groundup", "speedrun", "--preset", "smoke",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, **kw)


def test_smoke_speedrun_survives_sigkill_in_pretraining_and_completes(tmp_path):
    out = tmp_path / "run"
    ckpts = out / "base" / "checkpoints"
    p = _speedrun(out)
    try:
        # wait for the first complete pretraining checkpoint (the .pt and then its .json
        # sidecar: a .pt alone is an interrupted write, refused on resume), then kill the whole
        # run without warning. No deadline of our own: on a loaded machine the stages before it
        # take what they take; a run that dies is caught here, one that hangs by pytest --timeout
        while not (ckpts.exists() and any(c.with_suffix(".json").exists() for c in ckpts.glob("step_*.pt"))):
            assert p.poll() is None, p.stdout.read()
            time.sleep(0.2)
        assert not (out / "stages" / "pretrain.json").exists()
        p.send_signal(signal.SIGKILL)
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
    first_ckpts = sorted(c.name for c in ckpts.glob("step_*.pt"))
    assert first_ckpts

    p = _speedrun(out)
    log, _ = p.communicate()                                    # (hangs: pytest --timeout)
    assert p.returncode == 0, log
    assert "(done earlier" in log and "tokenizer" in log       # the finished stage was skipped
    assert "resum" in log.lower()                               # pretraining picked up its checkpoint
    metrics = [json.loads(l) for l in (out / "base" / "metrics.jsonl").read_text().splitlines()]
    steps = [m["step"] for m in metrics if "loss" in m]
    assert steps == sorted(set(steps)) and steps[-1] == 40      # each step once, to the end

    summary = json.loads((out / "summary.json").read_text())
    for tier in ("tier1", "tier2", "tier3"):
        s = summary["heldout"][tier]
        assert s["total"] >= 1 and 0 <= s["solved"] <= s["total"]
    assert summary["wall_s"] > 0
    report = (out / "report.md").read_text()
    for section in ("## Headline", "## Corpus and tokenizer", "## Pretraining",
                    "## Fine-tuning on agent trajectories", "## Reinforcement learning on training tasks",
                    "## Evaluation on held-out tasks",
                    "## A solved transcript", "## The code that did all this"):
        assert section in report
    assert "| read | edited |" in report                       # how far the runs got
    assert "tier1**: " in report and "traceback ends on the buggy line" in report  # what tier 1 means
    assert "optimizer muon" in report
    pt = summary["stages"]["pretrain"]      # the corpus pretraining read, and how many times
    assert pt["corpus_files"] == 40 and pt["corpus_train_tokens"] > 0
    assert pt["passes"] == round(pt["tokens"] / pt["corpus_train_tokens"], 2)
    assert f"training tokens, read {pt['passes']} times" in report
    for png in ("pretrain_loss.png", "sft_loss.png", "success_by_kind.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # the trained model is a model directory the agent can use
    assert (out / "model" / "config.json").exists() and (out / "model" / "tokenizer.json").exists()
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["tie_word_embeddings"] is True
    # the presets wire induction heads; fine-tuning kept the record (and with it the pins)
    assert config["groundup"]["wired_induction"] == {"match": 1} and config["rope_theta"] == 500000
    assert summary["stages"]["pretrain"]["copy_acc"] >= 0 and "val_turn_acc" in summary["stages"]["sft"]
    # copy drills went into the training rows only (train/copy_data.py)
    drills = summary["stages"]["sft"]["copy_drills"]
    meta = json.loads((out / "model" / "data" / "meta.json").read_text())
    named = summary["stages"]["sft"]["name_drills"]
    assert drills > 0 and named == 20 and meta["train"]["extra_examples"] == drills + named
    assert "copy drills" in report and "name drills" in report
    # the held-out variant (a layout and wording training never has) ran too, and each
    # unsolved run says what it did
    assert summary["stages"]["eval"]["varied"]["total"] == 1 and "layouts and wording" in report
    assert all(r["failure"] for r in map(json.loads, (out / "eval" / "results.jsonl").read_text().splitlines())
               if not r["solved"])
    results = [json.loads(l) for l in (out / "eval" / "results.jsonl").read_text().splitlines()]
    assert len(results) == sum(summary["heldout"][t]["total"] for t in summary["heldout"])
    # the rl stage practised on training tasks, and the evaluation ran the model it made
    rl = summary["stages"]["rl"]
    assert rl["ran"] and rl["steps"] == 1 and rl["attempts"] == 2
    assert (out / "rl" / "model.safetensors").exists() and (out / "rl_reward.png").exists()
    ids = [json.loads(l)["task_id"] for l in (out / "rl" / "rollouts" / "step_000001.jsonl").read_text().splitlines()]
    assert ids and all(i.startswith("train-") for i in ids)
    assert summary["stages"]["eval"]["model"] == f"local:{out / 'rl'}"
    print(f"smoke speedrun held-out: {summary['heldout']}")


def test_speedrun_refuses_a_directory_of_another_preset(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "preset.json").write_text(json.dumps({"name": "cpu"}))
    p = subprocess.run([sys.executable, "-m", "groundup", "speedrun", "--preset", "smoke",
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "another --out" in p.stderr and "Traceback" not in p.stderr


def test_seed_changes_the_presets_seed_and_a_seed_0_directory_refuses_it(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "groundup", "speedrun", "--preset", "smoke", "--out", str(out)]
    p = subprocess.run(cmd + ["--seed", "5", "--stop-after", "tokenizer"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads((out / "preset.json").read_text())["seed"] == 5
    assert (out / "stages" / "tokenizer.json").exists()
    # the same directory with the preset's own seed (0) is another recipe: refused, nothing run
    p = subprocess.run(cmd + ["--stop-after", "tokenizer"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "another --out" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run(cmd + ["--seed", "-1"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "whole number >= 0" in p.stderr and "Traceback" not in p.stderr


def test_a_run_from_before_a_new_setting_resumes_while_the_setting_keeps_its_default(tmp_path):
    import dataclasses
    from groundup.errors import UserError
    from groundup.speedrun.pipeline import check_out_dir
    from groundup.speedrun.presets import PRESETS
    cpu = PRESETS["cpu"]
    old = cpu.to_dict()
    del old["sft_name_drills"]                       # written before the setting existed
    del old["rl_steps"]                              # (and before RL, off in this preset)
    (tmp_path / "preset.json").write_text(json.dumps(old))
    check_out_dir(tmp_path, cpu)                     # same recipe: resumes
    with pytest.raises(UserError, match="another --out"):
        check_out_dir(tmp_path, dataclasses.replace(cpu, sft_name_drills=500))


def _only(out: Path, stages: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "groundup", "speedrun", "--preset", "smoke",
                           "--out", str(out), "--only", stages], capture_output=True, text=True,
                          timeout=300)


def test_speedrun_only_runs_the_named_stages_and_refuses_missing_inputs(tmp_path):
    out = tmp_path / "run"
    p = _only(out, "tasks,trajectories")          # the CPU half of a CPU-then-GPU run
    assert p.returncode == 0, p.stderr
    assert sorted(f.stem for f in (out / "stages").glob("*.json")) == ["tasks", "trajectories"]
    assert (out / "sft" / "trajectories.jsonl").stat().st_size > 0
    assert "rerun without --only" in p.stderr
    assert not (out / "tokenizer").exists() and not (out / "base").exists()

    p = _only(out, "sft")                           # its base model was never trained
    assert p.returncode == 2
    assert "needs the output of stage pretrain" in p.stderr and "Traceback" not in p.stderr

    p = _only(out, "tokenizer,bogus")
    assert p.returncode == 2 and "unknown stage 'bogus'" in p.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the note is for machines without a GPU")
def test_gpu_preset_without_a_gpu_says_how_to_split_the_run(tmp_path):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "groundup", "speedrun", "--preset", "gpu", "--out",
                        str(out), "--only", "sft"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2                        # refused: its base model was never trained
    assert "no CUDA GPU here" in p.stderr and "--only tokenizer,tasks,trajectories" in p.stderr
    p = subprocess.run([sys.executable, "-m", "groundup", "speedrun", "--preset", "gpu", "--out",
                        str(out), "--stop-after", "tokenizer", "--only", "tokenizer"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr              # the CPU half: no note
    assert "no CUDA GPU here" not in p.stderr
