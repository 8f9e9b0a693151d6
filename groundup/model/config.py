"""ModelConfig: every number that shapes a Llama-family transformer, and its HF config.json.

Design choices:
- One flat dataclass covers Llama, Qwen2 and Qwen3: they differ only in three switches
  (`qkv_bias` for Qwen2, `qk_norm` for Qwen3, `tie_embeddings`), so no subclass per family.
- Our own models are described by one dial, `depth` (nanochat's idea): width = 64 * depth,
  64-dim heads, SwiGLU hidden = 8/3 * width rounded up to a multiple of 64. Everything else
  has a sensible default; keyword overrides exist for experiments, not for a config monster.
- `config.json` is Hugging Face's format, so a model we train is a model transformers loads.
  We read both shapes transformers writes (4.x: top-level `rope_theta` + `rope_scaling`;
  5.x: `rope_parameters`) and write the 4.x shape, which both 4.x and 5.x read.
- Anything we cannot run correctly (an unknown architecture, yarn/dynamic RoPE, sliding-window
  attention) is refused with a UserError that says what is supported, never half-run.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundup.errors import UserError

# architecture name in config.json -> the family switches it implies
ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
}
ROPE_TYPES = ("default", "linear", "llama3")


@dataclass
class ModelConfig:
    vocab_size: int
    dim: int = 256                 # hidden size (HF: hidden_size)
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 4            # < n_heads means grouped-query attention
    head_dim: int = 64             # may differ from dim // n_heads (Qwen3 does this)
    ffn_dim: int = 704             # SwiGLU hidden size (HF: intermediate_size)
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None   # HF-style: {"rope_type": "llama3", "factor": ...}
    max_seq_len: int = 1024        # HF: max_position_embeddings
    tie_embeddings: bool = False
    qkv_bias: bool = False         # Qwen2
    qk_norm: bool = False          # Qwen3: RMSNorm over each head's q and k
    arch: str = "llama"            # llama | qwen2 | qwen3 (which HF class exports/loads it)
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    torch_dtype: str | None = None  # the dtype the checkpoint was saved in, if known
    extra: dict[str, Any] = field(default_factory=dict)   # groundup-only metadata (e.g. depth)

    def __post_init__(self) -> None:
        sizes = {"vocab_size": self.vocab_size, "hidden_size": self.dim, "num_hidden_layers": self.n_layers,
                 "num_attention_heads": self.n_heads, "num_key_value_heads": self.n_kv_heads,
                 "head_dim": self.head_dim, "intermediate_size": self.ffn_dim,
                 "max_position_embeddings": self.max_seq_len}
        for name, value in sizes.items():   # a hand-edited or damaged config.json lands here
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"config.json: {name} must be a positive integer, got {value!r}")
        if self.n_heads % self.n_kv_heads:
            raise UserError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}"
                            " -- grouped-query attention shares each kv head among a whole group")
        rtype = (self.rope_scaling or {}).get("rope_type", "default")
        if rtype not in ROPE_TYPES:
            raise UserError(f"unsupported RoPE scaling {rtype!r}; supported: {', '.join(ROPE_TYPES)}")

    # ---------------------------------------------------------------- our own models
    @classmethod
    def from_depth(cls, depth: int, vocab_size: int, max_seq_len: int = 1024, **overrides: Any) -> "ModelConfig":
        """nanochat-style: one dial. depth 4 -> ~4M params (+embeddings), depth 12 -> ~85M."""
        if depth < 1:
            raise UserError(f"depth must be >= 1, got {depth}")
        dim = 64 * depth
        n_heads = max(1, dim // 64)
        ffn = 64 * math.ceil(dim * 8 / 3 / 64)   # SwiGLU's 8/3 keeps params equal to a 4x MLP
        kw: dict[str, Any] = dict(vocab_size=vocab_size, dim=dim, n_layers=depth, n_heads=n_heads,
                                  n_kv_heads=n_heads, head_dim=dim // n_heads, ffn_dim=ffn,
                                  max_seq_len=max_seq_len, extra={"depth": depth})
        kw.update(overrides)
        return cls(**kw)

    # ---------------------------------------------------------------- HF config.json
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        archs = d.get("architectures") or []
        arch_name = archs[0] if archs else None
        if arch_name is None:
            # a config without `architectures` is accepted when model_type says what it is
            arch_name = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                         "qwen3": "Qwen3ForCausalLM"}.get(d.get("model_type", ""))
        if arch_name not in ARCHITECTURES:
            raise UserError(f"unsupported architecture {arch_name or d.get('model_type')!r}; "
                            f"supported: {', '.join(ARCHITECTURES)}")
        arch = ARCHITECTURES[arch_name]
        if d.get("use_sliding_window"):
            raise UserError("sliding-window attention (use_sliding_window=true) is not supported; "
                            "only full attention")
        theta, scaling = _parse_rope(d)
        n_heads = d["num_attention_heads"]
        head_dim = d.get("head_dim") or d["hidden_size"] // n_heads
        return cls(
            vocab_size=d["vocab_size"], dim=d["hidden_size"], n_layers=d["num_hidden_layers"],
            n_heads=n_heads, n_kv_heads=d.get("num_key_value_heads") or n_heads, head_dim=head_dim,
            ffn_dim=d["intermediate_size"], norm_eps=d.get("rms_norm_eps", 1e-6),
            rope_theta=theta, rope_scaling=scaling,
            max_seq_len=d.get("max_position_embeddings", 2048),
            tie_embeddings=bool(d.get("tie_word_embeddings", False)),
            qkv_bias=True if arch == "qwen2" else bool(d.get("attention_bias", False)),
            qk_norm=arch == "qwen3", arch=arch,
            bos_token_id=d.get("bos_token_id"), eos_token_id=d.get("eos_token_id"),
            torch_dtype=d.get("torch_dtype") or d.get("dtype"),
            extra=dict(d.get("groundup") or {}),
        )

    def to_hf_dict(self) -> dict[str, Any]:
        arch_name = {v: k for k, v in ARCHITECTURES.items()}[self.arch]
        d: dict[str, Any] = {
            "architectures": [arch_name],
            "model_type": self.arch,
            "vocab_size": self.vocab_size,
            "hidden_size": self.dim,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "intermediate_size": self.ffn_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": self.rope_scaling,
            "max_position_embeddings": self.max_seq_len,
            "tie_word_embeddings": self.tie_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "torch_dtype": self.torch_dtype or "float32",
        }
        if self.arch == "llama":
            d["attention_bias"] = self.qkv_bias
            d["mlp_bias"] = False
        if self.arch == "qwen3":
            d["attention_bias"] = self.qkv_bias
        if self.arch in ("qwen2", "qwen3"):
            d["use_sliding_window"] = False
        if self.extra:
            d["groundup"] = self.extra   # HF ignores unknown keys; we keep depth etc. here
        return d

    @classmethod
    def from_json_file(cls, path: str | Path) -> "ModelConfig":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no config.json at {path} -- is this a model directory?")
        try:
            d = json.loads(path.read_bytes().decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path} is not valid JSON ({e}): restore or re-export the model") from None
        if not isinstance(d, dict):
            raise UserError(f"{path} is not a JSON object: restore or re-export the model")
        try:
            return cls.from_hf_dict(d)
        except KeyError as e:
            raise UserError(f"{path} lacks the field {e.args[0]!r}") from None
        except (TypeError, ValueError, ZeroDivisionError, AttributeError, IndexError) as e:
            raise UserError(f"{path} has a field of the wrong type or value ({e})") from None

    def replace(self, **kw: Any) -> "ModelConfig":
        return dataclasses.replace(self, **kw)

    @property
    def eos_ids(self) -> tuple[int, ...]:
        e = self.eos_token_id
        return () if e is None else (e,) if isinstance(e, int) else tuple(e)


def _parse_rope(d: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """Both HF shapes -> (theta, scaling dict with `rope_type`, or None for plain RoPE)."""
    if isinstance(d.get("rope_parameters"), dict):          # transformers 5.x
        p = dict(d["rope_parameters"])
        theta = float(p.pop("rope_theta", d.get("rope_theta", 10000.0)))
        scaling = p
    else:                                                   # transformers 4.x
        theta = float(d.get("rope_theta", 10000.0))
        scaling = dict(d["rope_scaling"]) if d.get("rope_scaling") else {}
    # 4.x wrote "type" before it wrote "rope_type"
    rtype = scaling.pop("rope_type", None) or scaling.pop("type", None) or "default"
    if rtype not in ROPE_TYPES:
        raise UserError(f"unsupported RoPE scaling {rtype!r}; supported: {', '.join(ROPE_TYPES)}")
    if rtype == "default":
        return theta, None
    scaling = {k: v for k, v in scaling.items() if k in
               ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}
    if rtype == "llama3" and "original_max_position_embeddings" not in scaling:
        scaling["original_max_position_embeddings"] = d.get("max_position_embeddings", 8192)
    return theta, {"rope_type": rtype, **scaling}
