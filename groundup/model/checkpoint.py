"""Load and save model directories in Hugging Face's format (config.json + safetensors).

Design choices:
- One format for everything: our own models are saved exactly as transformers would save a
  LlamaForCausalLM, so `AutoModelForCausalLM.from_pretrained` (and vLLM, SGLang, llama.cpp's
  converter) load them, and `load_model` reads real Llama/Qwen2/Qwen3 checkpoints the same way.
- Tensor names: HF's minus the leading `model.` (our modules are named like HF's), except our
  two fused projections: `qkv_proj` holds HF's q_proj, k_proj, v_proj stacked along the output
  dimension, `gate_up_proj` holds gate_proj and up_proj (see `FUSED`). `lm_head` is absent
  from a checkpoint whose head is tied to the embedding.
- No second copy of the weights: the model is built on the `meta` device (shapes only, no
  memory), then each tensor is read from the memory-mapped safetensors file, converted to the
  requested dtype/device, and *assigned* as the parameter (a fused parameter is allocated once
  and its pieces copied into their rows) -- peak memory is one model plus one tensor in flight.
- Everything that can go wrong with a directory (no config, unsupported architecture, missing
  shard, a truncated or corrupt safetensors file, a tensor whose shape disagrees with
  config.json) is a one-line UserError.
- Saving is atomic (groundup.io) and touches only config.json, model.safetensors (and removes a
  stale shard index), so a tokenizer living in the same directory is left alone.
- Damage that keeps a file's length (a flipped bit on disk or in a copy) passes every header
  check, so a model we save carries the SHA-256 of its tensor bytes in the header's metadata
  (`groundup.sha256`, a string any safetensors reader ignores) and `load_model` checks it; a
  file without it (any HF checkpoint) is read as before.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save

from groundup.errors import UserError
from groundup.io import atomic_write_bytes, atomic_write_json, safetensors_header
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


# our fused parameter -> the HF modules stacked in it, in row order
FUSED = {"self_attn.qkv_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
         "mlp.gate_up_proj": ("mlp.gate_proj", "mlp.up_proj")}


def hf_pieces(name: str, cfg: ModelConfig) -> list[tuple[str, int]]:
    """our parameter name -> [(checkpoint tensor name, its number of rows)]; rows -1 = all of it"""
    prefix = "" if name.startswith("lm_head.") else "model."
    for fused, parts in FUSED.items():
        if f".{fused}." in name:
            rows = ([cfg.n_heads * cfg.head_dim] + [cfg.n_kv_heads * cfg.head_dim] * 2 if "qkv" in fused
                    else [cfg.ffn_dim] * 2)
            return [(prefix + name.replace(fused, part), r) for part, r in zip(parts, rows)]
    return [(prefix + name, -1)]


def _weight_files(d: Path) -> dict[str, Path]:
    """tensor name -> the safetensors file that holds it (single file or sharded index)."""
    single, index = d / "model.safetensors", d / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_bytes().decode("utf-8"))["weight_map"]
            files = {str(name): d / str(f) for name, f in weight_map.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserError(f"{index} is not a valid shard index (no weight_map): restore or "
                            "re-export the model") from None
        for f in sorted(set(files.values())):
            if not f.is_file():
                raise UserError(f"{index.name} lists {f.name}, which is missing from {d}")
            safetensors_header(f)             # every shard whole, before a tensor is read
        return files
    if single.is_file():
        # checked in pure Python: a truncated or garbled file is one clear line, not a
        # SafetensorError traceback from deep in a load
        return {name: single for name in safetensors_header(single) if name != "__metadata__"}
    if list(d.glob("*.bin")) or list(d.glob("*.pth")):
        raise UserError(f"{d} has only PyTorch .bin/.pth weights; convert them to safetensors "
                        "(transformers: model.save_pretrained(dir, safe_serialization=True))")
    raise UserError(f"no weights in {d}: expected model.safetensors or model.safetensors.index.json")


SHA_KEY = "groundup.sha256"     # metadata key: SHA-256 of the bytes after the header


def with_checksum(blob: bytes) -> bytes:
    """A serialised safetensors file -> the same file with the SHA-256 of its tensor data in the
    header's metadata. Tensor offsets count from the end of the header, so the header can be
    rewritten without touching the data; it is padded with spaces to a multiple of 8 bytes, as
    the format's writers do, to keep the data aligned."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    data = memoryview(blob)[8 + n:]
    header.setdefault("__metadata__", {})[SHA_KEY] = hashlib.sha256(data).hexdigest()
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + data


def verify_checksum(path: Path, header: dict[str, Any]) -> None:
    """Raise UserError if `path` carries a checksum that its tensor bytes do not match."""
    want = (header.get("__metadata__") or {}).get(SHA_KEY)
    if want is None:
        return
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(8 + int.from_bytes(f.read(8), "little"))
        while chunk := f.read(1 << 24):
            h.update(chunk)
    if h.hexdigest() != want:
        raise UserError(f"{path} is corrupt: its tensor bytes do not match the SHA-256 saved with "
                        "them (a bit changed on disk or in a copy) -- re-export or re-train the "
                        "model (or restore it from a copy)")


def check_model_dir(path: str | os.PathLike) -> ModelConfig:
    """Everything about a model directory that can be checked without reading the weights:
    config.json, and every weights file whole (headers and lengths). Cheap; for callers that
    must refuse a broken directory before they write anything."""
    d = Path(path)
    if d.is_file():
        raise UserError(f"{d} is a file, not a model directory: give the directory that holds "
                        "config.json and model.safetensors")
    if not d.is_dir():
        raise UserError(f"model directory {d} does not exist")
    cfg = ModelConfig.from_json_file(d / "config.json")
    _weight_files(d)
    return cfg


def load_model(path: str | os.PathLike, dtype: str | torch.dtype | None = torch.float32,
               device: str | torch.device = "cpu") -> Transformer:
    """A model directory (ours or HF Llama/Qwen2/Qwen3) -> Transformer in eval mode.
    dtype None keeps the checkpoint's own dtype."""
    d = Path(path)
    cfg = check_model_dir(d)
    files = _weight_files(d)
    for f in sorted(set(files.values())):
        verify_checksum(f, safetensors_header(f))
    with torch.device("meta"):
        model = Transformer(cfg)
    plan = {name: hf_pieces(name, cfg) for name, _ in model.named_parameters()}   # a tied head listed once
    wanted = {hf for pieces in plan.values() for hf, _ in pieces}
    for name, f in files.items():
        if name in wanted or name.endswith("rotary_emb.inv_freq"):   # old checkpoints saved this buffer
            continue
        if cfg.tie_embeddings and name == "lm_head.weight":          # some tied checkpoints keep the copy
            continue
        raise UserError(f"unexpected tensor {name!r} in {f.name}: config.json describes a different model")
    missing = sorted(wanted - set(files))
    if missing:
        raise UserError(f"weights for {missing[0]!r} (and {len(missing) - 1} more) are missing from {d}"
                        if len(missing) > 1 else f"weights for {missing[0]!r} are missing from {d}")

    dev = torch.device(device)
    params = dict(model.named_parameters())
    state: dict[str, torch.Tensor] = {}
    with ExitStack() as stack:
        handles: dict[Path, Any] = {}           # one open (memory-mapped) handle per shard
        for ours, pieces in plan.items():
            shape = params[ours].shape
            out = None
            row = 0
            for hf, rows in pieces:
                f = files[hf]
                try:
                    if f not in handles:
                        handles[f] = stack.enter_context(safe_open(f, "pt", device="cpu"))
                    t = handles[f].get_tensor(hf)
                except (SafetensorError, OSError, ValueError, RuntimeError) as e:
                    # damage the header check cannot see (an unknown dtype, unreadable bytes)
                    raise UserError(f"{f} is corrupt: reading {hf} failed ({e}) -- re-export or "
                                    "re-train the model") from None
                want = shape if rows == -1 else (rows, *shape[1:])
                if t.shape != want:
                    raise UserError(f"shape mismatch for {hf}: config.json implies {tuple(want)}, "
                                    f"{f.name} has {tuple(t.shape)}")
                if rows == -1:
                    state[ours] = t.to(device=dev, dtype=dtype or t.dtype)
                    continue
                if out is None:   # the fused parameter: allocated once, filled piece by piece
                    out = torch.empty(shape, device=dev, dtype=dtype or t.dtype)
                out[row:row + rows].copy_(t)
                row += rows
            if out is not None:
                state[ours] = out
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
        pieces = hf_pieces(name, cfg)
        t = p.detach().to("cpu")
        if len(pieces) == 1:
            tensors[pieces[0][0]] = t.contiguous()
        else:   # split a fused parameter back into HF's tensors (cloned: safetensors refuses shared memory)
            for (hf, _), part in zip(pieces, t.split([r for _, r in pieces])):
                tensors[hf] = part.clone()
        dtypes.add(p.dtype)
    hf = cfg.to_hf_dict()
    hf["torch_dtype"] = str(dtypes.pop()).removeprefix("torch.") if len(dtypes) == 1 else "float32"
    atomic_write_bytes(d / "model.safetensors",
                       with_checksum(safetensors_save(tensors, metadata={"format": "pt"})))
    stale_index = d / "model.safetensors.index.json"
    if stale_index.exists():                            # it would point loaders at old shards
        stale_index.unlink()
    atomic_write_json(d / "config.json", hf)
