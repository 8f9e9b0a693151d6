"""The report card from stage numbers alone (report.py reads only what the stages wrote)."""

import json

from groundup.speedrun.pipeline import SAMPLE_PROMPT
from groundup.speedrun.report import write_report


def pretrain_stage(**kw):
    return {"depth": 3, "params": 2_114_880, "steps": 160, "batch_size": 16, "seq_len": 512,
            "tokens": 1_310_720, "stage_s": 139.0, "tokens_per_s": 10_600.0, "final_loss": 3.9,
            "val_loss": 2.9, "val_bpb": 1.35, **kw}


def sample_block(report: str) -> str:
    return report.split("```python\n")[1].split("```")[0]


def test_the_pretraining_sample_shows_its_prompt_once_then_the_model(tmp_path):
    # the trainer decodes prompt + continuation, so the sample starts with the prompt itself
    sample = SAMPLE_PROMPT + "get_lines(path):\n    return path"
    write_report(tmp_path, "cpu", {"pretrain": pretrain_stage(sample=sample, sample_prompt=SAMPLE_PROMPT)})
    block = sample_block((tmp_path / "report.md").read_text())
    head, tail = block.split("# ---- the model, from here ----\n")
    assert head.count("def read_lines(path):") == 1 and "def get_lines" not in head
    assert tail == "def get_lines(path):\n    return path\n"
    assert json.loads((tmp_path / "summary.json").read_text())["preset"] == "cpu"


def test_a_run_from_before_the_sample_prompt_shows_def_once(tmp_path):
    # a base trained before the prompt existed: the bare "def " was the prompt
    write_report(tmp_path, "cpu", {"pretrain": pretrain_stage(sample="def fn fn (isname")})
    block = sample_block((tmp_path / "report.md").read_text())
    assert block.endswith("# ---- the model, from here ----\ndef fn fn (isname\n")
