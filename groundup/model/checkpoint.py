"""Load and save model directories in Hugging Face's format (config.json + safetensors).

Design choices:
- One format for everything: our own models are saved exactly as transformers would save a
  LlamaForCausalLM, so `AutoModelForCausalLM.from_pretrained` (and vLLM, SGLang, llama.cpp's
  converter) load them, and `load_model` reads real Llama/Qwen2/Qwen3 checkpoints the same way.
- Tensor names: HF's minus the leading `model.` (our modules are named like HF's); `lm_head`
  is absent from a checkpoint whose head is tied to the embedding.
- No second copy of the weights: the model is built on the `meta` device (shapes only, no
  memory), then each tensor is read from the memory-mapped safetensors file, converted to the
  requested dtype/device, and *assigned* as the parameter -- peak memory is one model plus
  one tensor in flight.
- Everything that can go wrong with a directory (no config, unsupported architecture, missing
  shard, a tensor whose shape disagrees with config.json) is a one-line UserError.
- Saving is atomic (groundup.io) and touches only config.json, model.safetensors (and removes a
  stale shard index), so a tokenizer living in the same directory is left alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save

from groundup.errors import UserError
from groundup.io import atomic_write_bytes, atomic_write_json
from groundup.model.config import ModelConfig
from groundup.model.llama import Transformer

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; use one of float32, bfloat16, float16")
    return DTYPES[dtype]


def hf_name(name: str) -> str:
    """our parameter name -> the checkpoint's tensor name"""
    return name if name.startswith("lm_head.") else "model." + name


def _weight_files(d: Path) -> dict[str, Path]:
    """tensor name -> the safetensors file that holds it (single file or sharded index)."""
    single, index = d / "model.safetensors", d / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = {name: d / f for name, f in weight_map.items()}
        for f in sorted(set(files.values())):
            if not f.is_file():
                raise UserError(f"{index.name} lists {f.name}, which is missing from {d}")
        return files
    if single.is_file():
        with safe_open(single, "pt") as f:
            return {name: single for name in f.keys()}
    if list(d.glob("*.bin")) or list(d.glob("*.pth")):
        raise UserError(f"{d} has only PyTorch .bin/.pth weights; convert them to safetensors "
                        "(transformers: model.save_pretrained(dir, safe_serialization=True))")
    raise UserError(f"no weights in {d}: expected model.safetensors or model.safetensors.index.json")


def load_model(path: str | os.PathLike, dtype: str | torch.dtype | None = torch.float32,
               device: str | torch.device = "cpu") -> Transformer:
    """A model directory (ours or HF Llama/Qwen2/Qwen3) -> Transformer in eval mode.
    dtype None keeps the checkpoint's own dtype."""
    d = Path(path)
    if not d.is_dir():
        raise UserError(f"model directory {d} does not exist")
    cfg = ModelConfig.from_json_file(d / "config.json")
    files = _weight_files(d)
    with torch.device("meta"):
        model = Transformer(cfg)
    expected = {hf_name(n): (n, p.shape) for n, p in model.named_parameters()}  # tied head listed once

    state: dict[str, torch.Tensor] = {}
    by_file: dict[Path, list[str]] = {}
    for name, f in files.items():
        if name.endswith("rotary_emb.inv_freq"):       # old checkpoints saved this derived buffer
            continue
        if name not in expected:
            if cfg.tie_embeddings and name == "lm_head.weight":
                continue                                # some tied checkpoints store the copy anyway
            raise UserError(f"unexpected tensor {name!r} in {f.name}: config.json describes a different model")
        by_file.setdefault(f, []).append(name)
    missing = sorted(set(expected) - {n for ns in by_file.values() for n in ns})
    if missing:
        raise UserError(f"weights for {missing[0]!r} (and {len(missing) - 1} more) are missing from {d}"
                        if len(missing) > 1 else f"weights for {missing[0]!r} are missing from {d}")
    dev = torch.device(device)
    for f, names in by_file.items():
        with safe_open(f, "pt", device="cpu") as sf:
            for name in names:
                t = sf.get_tensor(name)
                ours, shape = expected[name]
                if t.shape != shape:
                    raise UserError(f"shape mismatch for {name}: config.json implies {tuple(shape)}, "
                                    f"{f.name} has {tuple(t.shape)}")
                state[ours] = t.to(device=dev, dtype=dtype or t.dtype)
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]   # state_dict() names both sides of a tie
    model.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight   # assign=True may have split the tie: re-tie
    if dtype is not None:
        model.config.torch_dtype = str(dtype).removeprefix("torch.")
    return model.eval()


def save_model(model: Transformer, path: str | os.PathLike) -> None:
    """Write config.json + model.safetensors (HF names) into `path`, atomically, leaving other files."""
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    tensors: dict[str, torch.Tensor] = {}
    dtypes = set()
    for name, p in model.named_parameters():           # a tied head is yielded once (as the embedding)
        tensors[hf_name(name)] = p.detach().to("cpu").contiguous()
        dtypes.add(p.dtype)
    hf = cfg.to_hf_dict()
    hf["torch_dtype"] = str(dtypes.pop()).removeprefix("torch.") if len(dtypes) == 1 else "float32"
    atomic_write_bytes(d / "model.safetensors", safetensors_save(tensors, metadata={"format": "pt"}))
    stale_index = d / "model.safetensors.index.json"
    if stale_index.exists():                            # it would point loaders at old shards
        stale_index.unlink()
    atomic_write_json(d / "config.json", hf)
