"""`groundup export --format gguf`, read back with llama.cpp's own reader (the `gguf` package):
architecture and hyperparameters, tensor names and shapes, the tokenizer (tokens, types,
merges, BOS/EOS, pre-tokenizer name), the chat template; the weights round-trip (q/k in
llama.cpp's RoPE row order). That llama.cpp then generates the same greedy tokens as our
engine is bench/serve.py's check (llama-cpp-python builds in ~10 minutes: not for CI)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from groundup.model import load_model  # noqa: E402
from groundup.model.gguf_export import permute_rope  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "serve"))
from serve_testlib import our_model, scripted_qwen  # noqa: E402


def export(model_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "groundup", "export", "--model", str(model_dir), "--format", "gguf",
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=300)


def export_here(model_dir: Path, out: Path, *extra: str):
    """the same command, in this process (no second torch import)"""
    from groundup.cli import main
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["export", "--model", str(model_dir), "--format", "gguf", "--out", str(out), *extra])
    return subprocess.CompletedProcess([], rc, buf.getvalue(), "")


def fields(reader) -> dict:
    out = {}
    for name, f in reader.fields.items():
        if not f.types:
            continue
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            if f.types[-1] == gguf.GGUFValueType.STRING:
                out[name] = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            else:
                out[name] = [f.parts[i][0].item() for i in f.data]
        elif f.types[0] == gguf.GGUFValueType.STRING:
            out[name] = bytes(f.parts[f.data[0]]).decode("utf-8")
        else:
            out[name] = f.parts[f.data[0]][0].item()
    return out


def test_our_model_exports_to_a_gguf_llama_cpp_reads(tmp_path):
    d = our_model(tmp_path / "ours", depth=2)
    p = export_here(d, tmp_path / "ours.gguf")
    assert p.returncode == 0, p.stderr
    assert "pre-tokenizer llama-bpe" in p.stdout
    r = gguf.GGUFReader(str(tmp_path / "ours.gguf"))
    f = fields(r)
    model = load_model(d)
    cfg = model.config
    assert f["general.architecture"] == "llama"
    assert (f["llama.block_count"], f["llama.embedding_length"], f["llama.feed_forward_length"]) == \
        (cfg.n_layers, cfg.dim, cfg.ffn_dim)
    assert (f["llama.attention.head_count"], f["llama.attention.head_count_kv"], f["llama.context_length"]) == \
        (cfg.n_heads, cfg.n_kv_heads, cfg.max_seq_len)
    assert f["llama.rope.freq_base"] == pytest.approx(cfg.rope_theta)

    # the tokenizer: tokenizer.json's tokens in id order, its merges, specials as control tokens
    tj = json.loads((d / "tokenizer.json").read_text())
    vocab = {**tj["model"]["vocab"], **{t["content"]: t["id"] for t in tj["added_tokens"]}}
    assert f["tokenizer.ggml.model"] == "gpt2" and f["tokenizer.ggml.pre"] == "llama-bpe"
    assert len(f["tokenizer.ggml.tokens"]) == cfg.vocab_size
    assert all(f["tokenizer.ggml.tokens"][i] == s for s, i in vocab.items())
    assert f["tokenizer.ggml.merges"] == [" ".join(m) if isinstance(m, list) else m for m in tj["model"]["merges"]]
    specials = {t["id"] for t in tj["added_tokens"] if t["special"]}
    assert {i for i, t in enumerate(f["tokenizer.ggml.token_type"]) if t == gguf.TokenType.CONTROL} == specials
    tcfg = json.loads((d / "tokenizer_config.json").read_text())
    assert f["tokenizer.ggml.bos_token_id"] == vocab[tcfg["bos_token"]]
    assert f["tokenizer.ggml.eos_token_id"] == vocab[tcfg["eos_token"]]

    # tensors: names, shapes (GGUF lists dims innermost first), values; q and k in RoPE-pair order
    t = {x.name: x for x in r.tensors}
    names = {"token_embd.weight", "output_norm.weight", "output.weight"} | {
        f"blk.{i}.{n}.weight" for i in range(cfg.n_layers) for n in
        ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm", "ffn_norm")}
    assert set(t) == names
    H, D = cfg.n_heads, cfg.head_dim
    assert list(t["blk.0.attn_q.weight"].shape) == [cfg.dim, H * D]
    assert list(t["blk.1.ffn_down.weight"].shape) == [cfg.ffn_dim, cfg.dim]
    assert list(t["token_embd.weight"].shape) == [cfg.dim, cfg.vocab_size]
    q = model.layers[1].self_attn.qkv_proj.weight[:H * D]
    got_q = torch.from_numpy(np.array(t["blk.1.attn_q.weight"].data)).reshape(H * D, cfg.dim)
    assert torch.equal(got_q, permute_rope(q, H)) and not torch.equal(got_q, q)
    emb = torch.from_numpy(np.array(t["token_embd.weight"].data)).reshape(cfg.vocab_size, cfg.dim)
    assert torch.equal(emb, model.embed_tokens.weight)


def test_permute_rope_turns_rotate_halves_into_rotate_pairs():
    """The reason for the permutation: rotating halves of the original rows equals rotating
    adjacent pairs of the permuted rows (then reading the result back in pair order)."""
    torch.manual_seed(0)
    D, n = 8, 3
    w = torch.randn(n * D, 5)
    x = torch.randn(5)
    theta = torch.rand(D // 2)
    y = (w @ x).view(n, D)
    a, b = y[:, :D // 2], y[:, D // 2:]
    halves = torch.cat([a * theta.cos() - b * theta.sin(), b * theta.cos() + a * theta.sin()], -1)
    yp = (permute_rope(w, n) @ x).view(n, D // 2, 2)
    pairs = torch.stack([yp[..., 0] * theta.cos() - yp[..., 1] * theta.sin(),
                         yp[..., 1] * theta.cos() + yp[..., 0] * theta.sin()], -1)
    assert torch.allclose(pairs.permute(0, 2, 1).reshape(n, D), halves, atol=1e-6)


def test_a_qwen2_directory_keeps_its_biases_template_and_pre_tokenizer(tmp_path):
    d = scripted_qwen(tmp_path / "qwen")
    p = export_here(d, tmp_path / "q.gguf", "--dtype", "float16")
    assert p.returncode == 0, p.stderr
    r = gguf.GGUFReader(str(tmp_path / "q.gguf"))
    f = fields(r)
    assert f["general.architecture"] == "qwen2" and f["tokenizer.ggml.pre"] == "gpt-2"
    assert "<|im_start|>" in f["tokenizer.chat_template"]
    t = {x.name: x for x in r.tensors}
    assert "blk.0.attn_q.bias" in t and t["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert t["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    added = {t["content"]: t["id"] for t in json.loads((d / "tokenizer.json").read_text())["added_tokens"]}
    assert f["tokenizer.ggml.eos_token_id"] == added["<|im_end|>"]


def test_export_errors_are_one_line(tmp_path):
    d = our_model(tmp_path / "ours")
    (tmp_path / "dir").mkdir()
    p = export(d, tmp_path / "dir")
    assert p.returncode == 2 and "is a directory" in p.stderr and "Traceback" not in p.stderr
    p = export(d, tmp_path / "x.gguf", "--dtype", "bfloat16")
    assert p.returncode == 2 and "float32 or float16" in p.stderr
