"""GGUF export: one file that llama.cpp, Ollama and LM Studio run -- weights, tokenizer and chat
template together.

    groundup export --model runs/cpu/model --format gguf --out model.gguf [--dtype float16]

GGUF is llama.cpp's container: a header of typed key/value metadata (`general.architecture`,
`llama.block_count`, `tokenizer.ggml.tokens`, ...) followed by named tensors
(`token_embd.weight`, `blk.0.attn_q.weight`, ...). llama.cpp builds the model from the
metadata alone, so everything our config.json and tokenizer.json say must be spelled in its
vocabulary. What this file writes, for each of our three families:

    ours / Llama -> "llama"    Qwen2 -> "qwen2" (+ q/k/v biases)    Qwen3 -> "qwen3" (+ q/k norms)

Design choices:
- Written with the `gguf` package (llama.cpp's own Python writer: the format's byte layout is
  plumbing; which names and values go in is the part worth reading here). It is an optional
  dependency (`pip install groundup[gguf]`): only this export needs it, and a missing package
  is one clear error, not an ImportError at `groundup --help`.
- RoPE: our model (like HF's) rotates the two *halves* of each head; llama.cpp's "llama"
  architecture rotates *adjacent pairs*. The same function, with the rows of q and k
  reordered -- the permutation llama.cpp's convert_hf_to_gguf.py applies. Qwen2/Qwen3 run in
  llama.cpp with the halves ("neox") rotation, so their q and k are written as they are.
- The tokenizer goes in as a byte-level BPE ("gpt2" model): tokens in id order, spelled in
  GPT-2's bytes-to-unicode alphabet as tokenizer.json has them, the merges, which tokens are
  special (control), BOS/EOS, and the pre-tokenizer's *name* -- llama.cpp does not read a regex
  from the file; it knows a list of pre-tokenizers by name, so ours (GPT-4's split pattern)
  is "llama-bpe", GPT-2's "gpt-2", Qwen2's "qwen2"; another pattern is refused.
- float32 or float16 tensors (norms stay float32, as llama.cpp's converter keeps them);
  quantisation is llama.cpp's own `llama-quantize`, run on this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from groundup.errors import UserError

ARCH = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _gguf():
    try:
        import gguf
    except ImportError:
        raise UserError("GGUF export needs the `gguf` package (llama.cpp's writer): "
                        "pip install 'groundup[gguf]'  (or: pip install gguf)") from None
    return gguf


def pre_tokenizer_name(tok_json: dict) -> str:
    """The llama.cpp name of a tokenizer.json's pre-tokenizer (its split regex)."""
    from groundup.tokenizer.tokenizer import GPT4_PATTERN

    pre = tok_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    patterns = [(s.get("pattern") or {}).get("Regex") for s in steps if s.get("type") == "Split"]
    if not patterns:
        if any(s.get("type") == "ByteLevel" and s.get("use_regex", True) for s in steps):
            return "gpt-2"
        raise UserError("the tokenizer has no split pattern llama.cpp knows (no Split, no ByteLevel regex)")
    known = {GPT4_PATTERN: "llama-bpe", QWEN2_PATTERN: "qwen2"}
    if patterns[0] in known:
        return known[patterns[0]]
    raise UserError(f"the tokenizer's split pattern {patterns[0][:60]!r}... is not one llama.cpp knows by name "
                    "(GPT-4's / Llama 3's, Qwen2's, GPT-2's): llama.cpp would split text differently")


def permute_rope(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """HF's rotate-halves row order -> llama.cpp's adjacent-pairs order, per head:
    rows (h, half, i) become (h, i, half) -- llama.cpp's convert_hf_to_gguf permutation."""
    out = w.shape[0]
    return w.reshape(n_heads, 2, out // n_heads // 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def _tensors(model, arch: str):
    """(gguf name, tensor) for every weight, q/k permuted for the "llama" architecture."""
    cfg = model.config
    H, Hkv, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    yield "token_embd.weight", model.embed_tokens.weight
    for i, layer in enumerate(model.layers):
        a, m = layer.self_attn, layer.mlp
        q, k, v = a.qkv_proj.weight.split([H * D, Hkv * D, Hkv * D])
        if arch == "llama":
            q, k = permute_rope(q, H), permute_rope(k, Hkv)
        yield f"blk.{i}.attn_q.weight", q
        yield f"blk.{i}.attn_k.weight", k
        yield f"blk.{i}.attn_v.weight", v
        if a.qkv_proj.bias is not None:
            qb, kb, vb = a.qkv_proj.bias.split([H * D, Hkv * D, Hkv * D])
            yield f"blk.{i}.attn_q.bias", qb
            yield f"blk.{i}.attn_k.bias", kb
            yield f"blk.{i}.attn_v.bias", vb
        if a.q_norm is not None:
            yield f"blk.{i}.attn_q_norm.weight", a.q_norm.weight
            yield f"blk.{i}.attn_k_norm.weight", a.k_norm.weight
        yield f"blk.{i}.attn_output.weight", a.o_proj.weight
        gate, up = m.gate_up_proj.weight.chunk(2)
        yield f"blk.{i}.ffn_gate.weight", gate
        yield f"blk.{i}.ffn_up.weight", up
        yield f"blk.{i}.ffn_down.weight", m.down_proj.weight
        yield f"blk.{i}.attn_norm.weight", layer.input_layernorm.weight
        yield f"blk.{i}.ffn_norm.weight", layer.post_attention_layernorm.weight
    yield "output_norm.weight", model.norm.weight
    if not cfg.tie_embeddings:
        yield "output.weight", model.lm_head.weight


def export_gguf(model_dir: Path, out: Path, dtype: str | None = None,
                chat_template: str | None = None) -> dict:
    """Write `out` (.gguf); returns a summary {arch, tensors, vocab, pre, dtype}.
    `chat_template` is the Jinja source to carry (the caller reads it with the chat layer,
    which sits beside this one and is not imported from here)."""
    gguf = _gguf()
    from groundup.model.checkpoint import load_model

    if dtype not in (None, "float32", "float16"):
        raise UserError(f"GGUF export writes float32 or float16 tensors, not {dtype} "
                        "(quantise the float16 file with llama.cpp's llama-quantize)")
    tok_path = model_dir / "tokenizer.json"
    if not tok_path.is_file():
        raise UserError(f"{model_dir} has no tokenizer.json: a GGUF file carries its tokenizer, so the export needs one")
    tok = json.loads(tok_path.read_text(encoding="utf-8"))
    if (tok.get("model") or {}).get("type") != "BPE":
        raise UserError("GGUF export supports byte-level BPE tokenizers (GPT-2 / Llama 3 / Qwen2 style) only")
    pre = pre_tokenizer_name(tok)
    model = load_model(model_dir, dtype=torch.float32, device="cpu")
    cfg = model.config
    arch = ARCH[cfg.arch]
    half = dtype == "float16"

    w = gguf.GGUFWriter(str(out), arch)
    w.add_name(model_dir.resolve().name)
    w.add_context_length(cfg.max_seq_len)
    w.add_embedding_length(cfg.dim)
    w.add_block_count(cfg.n_layers)
    w.add_feed_forward_length(cfg.ffn_dim)
    w.add_head_count(cfg.n_heads)
    w.add_head_count_kv(cfg.n_kv_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_layer_norm_rms_eps(cfg.norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if half else gguf.LlamaFileType.ALL_F32)

    # tokenizer: every id from 0 to vocab_size - 1 (a model may have rows no token uses)
    vocab = dict(tok["model"]["vocab"])
    added = {t["content"]: t for t in tok.get("added_tokens", [])}
    vocab.update({c: t["id"] for c, t in added.items()})
    by_id = {i: s for s, i in vocab.items()}
    tokens, types = [], []
    for i in range(cfg.vocab_size):
        s = by_id.get(i)
        if s is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(s)
            types.append(gguf.TokenType.CONTROL if s in added and added[s].get("special")
                         else gguf.TokenType.USER_DEFINED if s in added else gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"].get("merges", [])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    eos = list(cfg.eos_ids)
    bos = cfg.bos_token_id
    tcfg_path = model_dir / "tokenizer_config.json"
    tcfg = json.loads(tcfg_path.read_text(encoding="utf-8")) if tcfg_path.is_file() else {}
    for key, setter in (("bos_token", "bos"), ("eos_token", "eos")):
        name = tcfg.get(key)
        name = name.get("content") if isinstance(name, dict) else name
        if name in vocab:
            if setter == "bos":
                bos = vocab[name]
            else:
                eos = [vocab[name]] + [e for e in eos if e != vocab[name]]
    if bos is not None:
        w.add_bos_token_id(bos)
        w.add_add_bos_token(cfg.arch == "llama")     # Llama-style models start every text with BOS
    if eos:
        w.add_eos_token_id(eos[0])
    if chat_template is not None:
        w.add_chat_template(chat_template)

    n = 0
    for name, t in _tensors(model, arch):
        t = t.detach().float()
        keep32 = t.ndim == 1                      # norms and biases stay float32
        w.add_tensor(name, t.numpy().astype(np.float32 if keep32 or not half else np.float16))
        n += 1
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"arch": arch, "tensors": n, "vocab": cfg.vocab_size, "pre": pre,
            "dtype": "float16" if half else "float32", "chat_template": chat_template is not None}
