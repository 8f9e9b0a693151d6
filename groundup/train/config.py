"""What a training run is told: one dataclass per kind of run, and what a resume must share.

    LoopConfig          the optimisation: steps, batch, learning rate, evaluation, checkpoints
    TrainConfig         + pretraining: data, tokenizer, the model's --depth dial, induction heads
    SFTConfig           + fine-tuning: the model to start from, the (ids, mask) examples

Design choice: plain dataclasses, saved whole into the run directory's train_config.json, so a
run says how it was made and a resume can check it continues the same run (COMPATIBLE).
`check_config` refuses impossible numbers before anything is written (the CLI's argparse types
catch them first; this is for callers of the library, such as the speedrun).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundup.errors import UserError


@dataclass(kw_only=True)
class LoopConfig:
    out: str                        # run directory
    steps: int = 500                # optimizer steps
    batch_size: int = 32            # global batch: sequences per optimizer step, all processes
    micro_batch: int | None = None  # sequences per forward per process (None: batch / world)
    seq_len: int = 256
    lr: float | None = None         # peak learning rate (None: derived from the model width)
    warmup_steps: int | None = None # None: 5% of the steps (at most 100)
    min_lr_frac: float = 0.1
    weight_decay: float = 0.1
    optimizer: str = "adamw"        # adamw | muon (train/muon.py: Muon for the block matrices)
    grad_clip: float = 1.0
    eval_every: int = 100           # validation loss + bits/byte + a sample (0: only at the end)
    eval_tokens: int = 32768        # validation tokens per evaluation
    sample_tokens: int = 48
    save_every: int = 100           # checkpoint every N steps (and at the end)
    keep_checkpoints: int = 2
    log_every: int = 0              # progress line every N steps when not a TTY (0: auto)
    seed: int = 0
    dtype: str = "auto"             # auto | float32 | bfloat16 (autocast; train/precision.py)
    compile: bool = False           # torch.compile the model
    device: str = "auto"            # auto | cpu | cuda
    resume: bool = True             # continue a run found in `out` (False: refuse one)
    quiet: bool = False


@dataclass(kw_only=True)
class TrainConfig(LoopConfig):
    data: list[str] | None = None   # text files / directories (None: the embedded stdlib)
    data_dir: str | None = None     # where token shards go (None: OUT/data); reused if complete
    tokenizer: str | None = None    # tokenizer directory (None: train one, kept in OUT)
    vocab_size: int = 4096          # for the tokenizer trained when none is given
    depth: int = 4                  # the model dial: width 64*depth, depth layers
    context_len: int | None = None  # the model's context (max_seq_len); None: seq_len. Set it to
                                    # the fine-tuning length when SFT will use longer rows
    val_fraction: float = 0.02
    sample_prompt: str = "def "
    tie_embeddings: bool = False    # the output head shares the embedding matrix
    wire_induction: bool = False    # start from hand-written induction heads (train/circuits.py)
    induction_match: int = 1        # ...whose second head matches the last 1 or 2 tokens


@dataclass(kw_only=True)
class SFTConfig(LoopConfig):
    init: str = ""                  # model directory to start from (e.g. a pretraining run)
    data: str = ""                  # prepared SFT dir (prepare_sft_data) or JSONL of {"ids","mask"}
    val_fraction: float = 0.05
    lr: float | None = None         # None: a third of the pretraining rate for this width...
    lr_scale: float = 1.0           # ...times this (the cpu speedrun fine-tunes at 3: docs/08)
    weight_decay: float = 0.0
    min_lr_frac: float = 0.0
    sample_prompt_ids: list[int] | None = None   # e.g. a rendered chat prompt


# fields a resumed run must share with the run it continues
COMPATIBLE = {"pretrain": ("depth", "vocab_size", "tokenizer", "data", "seq_len", "batch_size", "seed",
                           "val_fraction", "context_len", "tie_embeddings", "wire_induction", "induction_match",
                           "optimizer"),
              "sft": ("init", "data", "seq_len", "batch_size", "seed", "val_fraction", "optimizer")}
# settings added after runs were already on disk: what such a run used
ADDED_DEFAULTS = {"optimizer": "adamw", "induction_match": 1}


def config_dict(cfg: LoopConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def check_config(cfg: LoopConfig) -> None:
    """The numbers of a run, checked before anything is written."""
    positive = {"steps": cfg.steps, "batch_size": cfg.batch_size, "seq_len": cfg.seq_len,
                "eval_tokens": cfg.eval_tokens, "micro_batch": cfg.micro_batch or 1}
    for name, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    for name in ("eval_every", "save_every", "seed"):
        if getattr(cfg, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(cfg, name)}")
    if cfg.lr is not None and not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise UserError(f"--lr must be a positive number, got {cfg.lr}")
    if not 0 <= getattr(cfg, "val_fraction", 0) < 1:
        raise UserError(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
    if not 1 <= getattr(cfg, "depth", 1) <= 64:
        raise UserError(f"--depth must be between 1 and 64, got {cfg.depth}")
    world = int(os.environ.get("WORLD_SIZE", 1))
    micro = cfg.micro_batch or max(1, cfg.batch_size // world)
    if cfg.batch_size % (micro * world):
        raise UserError(f"--batch-size {cfg.batch_size} is not a multiple of micro-batch {micro} x "
                        f"{world} processes -- pick sizes that divide")
    if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise UserError(f"--out {cfg.out} is a file, not a directory")
