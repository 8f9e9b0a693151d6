"""The two ways to train a model, from scratch and from a model: resumable, data-parallel.

    pretrain(TrainConfig) -> run_dir      tokenizer (trained if none given) -> shards -> loop
    sft(SFTConfig) -> run_dir             model dir + (ids, mask) examples -> packed rows -> loop

Each entry point prepares its data and its starting weights, then hands both to the one loop
(train/loop.py). The pieces, one idea per file:

    config.py      what a run is told (TrainConfig, SFTConfig) and what a resume must share
    dist.py        the processes (one, or several under torchrun)
    rundir.py      the run directory: checked before anything is written, a model dir when done
    precision.py   bf16 autocast or float32
    loop.py        the optimisation: micro-steps, DDP, checkpoints, evaluations
    validation.py  validation loss, bits per byte, and samples through the inference engine
    progress.py    the status line and MFU
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from groundup.errors import UserError
from groundup.io import read_jsonl
from groundup.train.circuits import wired_model
from groundup.train.config import LoopConfig, SFTConfig, TrainConfig, check_config   # noqa: F401  (re-exported)
from groundup.train.data import open_dataset, prepare_data, prepare_sft_data, token_byte_lengths
from groundup.train.dist import teardown
from groundup.train.loop import train_loop
from groundup.train.optim import default_lr
from groundup.train.rundir import finish_run, open_run

__all__ = ["TrainConfig", "SFTConfig", "LoopConfig", "pretrain", "sft", "read_examples"]


def pretrain(cfg: TrainConfig) -> Path:
    """Train a model from scratch; resumable; returns the run directory (a model directory)."""
    from groundup.model import ModelConfig, Transformer
    from groundup.tokenizer import default_corpus_files, load_tokenizer, train_tokenizer

    from groundup.tokenizer.corpus import expand_paths

    check_config(cfg)
    if cfg.context_len is not None and cfg.seq_len > cfg.context_len:
        raise UserError(f"--seq-len {cfg.seq_len} is above --context-len {cfg.context_len} -- "
                        "the model cannot attend further than its context")
    if cfg.data:
        expand_paths(cfg.data)          # every data path exists and holds text: said before any write
    if cfg.tokenizer:
        load_tokenizer(cfg.tokenizer)   # a tokenizer that does not load: said before any write
    if cfg.data_dir and Path(cfg.data_dir).exists() and not Path(cfg.data_dir).is_dir():
        raise UserError(f"--data-dir {cfg.data_dir} is a file, not a directory")
    d, run, status = open_run(cfg, "pretrain")
    try:
        if status == "finished":
            d.say(f"{run} is already trained to step {cfg.steps}; nothing to do", cfg.quiet)
            return run
        paths = list(cfg.data) if cfg.data else default_corpus_files()
        if cfg.tokenizer:
            tok = load_tokenizer(cfg.tokenizer)
        elif (run / "tokenizer.json").exists():   # trained by this run before it was stopped
            tok = load_tokenizer(run)
        else:
            if d.main:
                d.say(f"training a {cfg.vocab_size}-token tokenizer on the data", cfg.quiet)
                train_tokenizer(paths, vocab_size=cfg.vocab_size, progress=not cfg.quiet).save(run)
            d.barrier()
            tok = load_tokenizer(run)
        data_dir = Path(cfg.data_dir) if cfg.data_dir else run / "data"
        if d.main:
            prepare_data(paths, tok, data_dir, cfg.val_fraction, cfg.seed, progress=not cfg.quiet)
        d.barrier()
        mcfg = ModelConfig.from_depth(cfg.depth, tok.vocab_size, max_seq_len=cfg.context_len or cfg.seq_len,
                                      bos_token_id=tok.bos_id, eos_token_id=tok.eos_id,
                                      tie_embeddings=cfg.tie_embeddings)
        if cfg.wire_induction:   # hand-written induction heads (train/circuits.py)
            model, note = wired_model(mcfg, cfg.seed, cfg.induction_match)
            d.say(note, cfg.quiet)
        else:
            torch.manual_seed(cfg.seed)
            model = Transformer(mcfg)
            model.init_weights()
        train_ds = open_dataset(data_dir, "train", cfg.seq_len)
        val_ds = open_dataset(data_dir, "val", cfg.seq_len)
        tb = np.load(data_dir / "token_bytes.npy")
        d.say(f"model: depth {cfg.depth}, {model.num_params() / 1e6:.2f}M parameters; "
              f"data: {train_ds.n_items} training windows of {cfg.seq_len} tokens; "
              f"{d.world} process(es) on {d.device}", cfg.quiet)
        prompt = [tok.bos_id] + list(tok.encode(cfg.sample_prompt))
        train_loop(cfg, d, model, train_ds, val_ds, tb, run, cfg.lr or default_lr(mcfg.dim),
                   prompt, lambda ids: tok.decode(ids[1:]), (tok.bos_id, tok.eos_id))
        finish_run(d, run, model, tok, cfg)
        return run
    finally:
        teardown(d)


def read_examples(path: str | os.PathLike):
    """(ids, mask) pairs from a JSONL of {"ids": [...], "mask": [...]} records."""
    for r in read_jsonl(path):
        yield r["ids"], r["mask"]


def sft(cfg: SFTConfig, examples: Iterable[tuple[Sequence[int], Sequence[int]]] | None = None,
        train_extra: Sequence[tuple[Sequence[int], Sequence[int]]] = ()) -> Path:
    """Fine-tune a model directory; resumable; returns the run directory (a model directory).

    The data: `examples` ((ids, mask) pairs, e.g. rendered by the chat layer), else `cfg.data` as a
    JSONL of {"ids", "mask"} records, else `cfg.data` as a directory from prepare_sft_data.
    Examples are packed for cfg.seq_len into OUT/data once; a resumed run reuses that.
    `train_extra`: more (ids, mask) pairs for the training rows only (train/copy_data.py).
    """
    from groundup.model import load_model
    from groundup.model.checkpoint import check_model_dir
    from groundup.tokenizer import load_tokenizer
    from groundup.tokenizer.special import EOT

    check_config(cfg)
    if not cfg.init or not Path(cfg.init).is_dir():
        raise UserError(f"--init {cfg.init!r} is not a model directory -- give a pretraining run "
                        "directory or a model directory")
    if examples is None and (not cfg.data or not Path(cfg.data).exists()):
        raise UserError(f"fine-tuning data {cfg.data!r} does not exist")
    context = check_model_dir(cfg.init).max_seq_len    # config and weights whole, before any write
    if cfg.seq_len > context:
        raise UserError(f"--seq-len {cfg.seq_len} is above the context of {cfg.init} ({context} tokens) "
                        f"-- use --seq-len <= {context}, or pretrain with --context-len {cfg.seq_len}")
    tok = load_tokenizer(cfg.init)
    d, run, status = open_run(cfg, "sft")
    try:
        if status == "finished":
            d.say(f"{run} is already fine-tuned to step {cfg.steps}; nothing to do", cfg.quiet)
            return run
        model = load_model(cfg.init)
        model = model.float()   # master weights in float32; autocast does the low precision
        data_dir = Path(cfg.data) if cfg.data else run / "data"
        if examples is not None or data_dir.is_file():   # raw examples: pack them once
            if examples is None:
                examples = read_examples(cfg.data)
            data_dir = run / "data"
            if d.main and not (data_dir / "meta.json").exists():
                prepare_sft_data(examples, data_dir, cfg.seq_len, pad_id=tok.eos_id,
                                 val_fraction=cfg.val_fraction, seed=cfg.seed,
                                 vocab_size=tok.vocab_size, token_bytes=token_byte_lengths(tok),
                                 train_extra=train_extra)
            d.barrier()
        train_ds = open_dataset(data_dir, "train", cfg.seq_len)
        val_ds = open_dataset(data_dir, "val", cfg.seq_len)
        tbp = data_dir / "token_bytes.npy"
        tb = np.load(tbp) if tbp.exists() else None
        meta = json.loads((data_dir / "meta.json").read_text())
        d.say(f"fine-tuning {cfg.init}: {meta['train']['examples']} examples in "
              f"{train_ds.n_items} packed rows, {meta['train']['loss_tokens']} assistant tokens", cfg.quiet)
        torch.manual_seed(cfg.seed)
        eot = tok.token_to_id(EOT) if hasattr(tok, "token_to_id") else None
        stops = tuple(i for i in (tok.eos_id, eot) if i is not None)
        train_loop(cfg, d, model, train_ds, val_ds, tb, run, cfg.lr or default_lr(model.config.dim) / 3 * cfg.lr_scale,
                   cfg.sample_prompt_ids, lambda ids: tok.decode(ids[len(cfg.sample_prompt_ids or []):]),
                   stops)
        finish_run(d, run, model, tok, cfg)
        return run
    finally:
        teardown(d)
