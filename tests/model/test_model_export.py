"""Our own models: training-mode forward, init, save/load, and `groundup export --format hf`
read back by transformers (AutoModelForCausalLM + AutoTokenizer)."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from groundup.cli import main
from groundup.model import ModelConfig, Transformer, load_model, save_model
from groundup.tokenizer import train_tokenizer


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    m = Transformer(ModelConfig.from_depth(2, 300, max_seq_len=64, **kw))
    m.init_weights()
    return m


def test_init_is_deterministic_and_forward_is_causal():
    a, b = _model(1), _model(1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    idx = torch.randint(0, 300, (2, 16))
    logits = a(idx)
    assert logits.shape == (2, 16, 300) and logits.dtype == torch.float32
    idx2 = idx.clone()
    idx2[:, 10:] = (idx2[:, 10:] + 1) % 300            # change the future ...
    assert torch.allclose(a(idx2)[:, :10], logits[:, :10], atol=1e-6)   # ... the past does not see it
    logits.sum().backward()                               # trainable as is
    assert a.layers[0].mlp.gate_up_proj.weight.grad is not None


def test_num_params_counts_a_tied_head_once():
    untied, tied = _model(), _model(tie_embeddings=True)
    emb = 300 * untied.config.dim
    assert untied.num_params() - tied.num_params() == emb
    assert tied.num_params(exclude_embeddings=True) == tied.num_params() - emb


def test_save_is_atomic_and_leaves_other_files(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}")
    m = _model(tie_embeddings=True, n_kv_heads=1)
    save_model(m, tmp_path)
    assert (tmp_path / "tokenizer.json").read_text() == "{}"
    assert not list(tmp_path.glob(".*tmp"))
    back = load_model(tmp_path)
    idx = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        assert torch.equal(back(idx), m(idx))
    assert back.config.extra == {"depth": 2} and back.config.n_kv_heads == 1


def test_a_flipped_bit_in_the_tensors_is_caught(tmp_path):
    """Same length, valid header: only the SHA-256 saved in the metadata can tell."""
    from safetensors import safe_open
    from groundup.errors import UserError
    from groundup.model.checkpoint import SHA_KEY
    save_model(_model(), tmp_path)
    f = tmp_path / "model.safetensors"
    with safe_open(f, "pt") as h:                       # still a plain safetensors file to others
        assert len(h.metadata()[SHA_KEY]) == 64 and h.metadata()["format"] == "pt"
    data = bytearray(f.read_bytes())
    n = 8 + int.from_bytes(data[:8], "little")
    assert n % 8 == 0                                   # the data stays 8-byte aligned
    data[(n + len(data)) // 2] ^= 0x10                  # one bit in the middle of the tensors
    f.write_bytes(bytes(data))
    with pytest.raises(UserError, match="do not match the SHA-256"):
        load_model(tmp_path)
    data[(n + len(data)) // 2] ^= 0x10                  # put it back: loads again
    f.write_bytes(bytes(data))
    load_model(tmp_path)


@pytest.mark.parametrize("tie", [False, True])
def test_export_roundtrip_through_transformers(tmp_path, tie):
    tok = train_tokenizer(["def add(a, b):\n    return a + b\n" * 40], vocab_size=300, progress=False)
    m = _model(3, tie_embeddings=tie, n_kv_heads=1)
    src, out = tmp_path / "ours", tmp_path / "hf"
    save_model(m, src)
    tok.save(src)
    assert main(["export", "--model", str(src), "--format", "hf", "--out", str(out)]) == 0
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(hf).__name__ == "LlamaForCausalLM" and hf.config.tie_word_embeddings == tie
    idx = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        assert (hf(idx).logits - m(idx)).abs().max().item() < 1e-4
    hf_tok = AutoTokenizer.from_pretrained(out)
    text = "def add(x, y):\n    return x + y\n"
    assert hf_tok.encode(text, add_special_tokens=False) == tok.encode(text)
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.eos_id and hf.config.eos_token_id == tok.eos_id


def test_export_bf16_and_errors(tmp_path, capsys):
    m = _model()
    save_model(m, tmp_path / "src")
    assert main(["export", "--model", str(tmp_path / "src"), "--out", str(tmp_path / "bf"), "--dtype", "bfloat16"]) == 0
    assert load_model(tmp_path / "bf", dtype=None).embed_tokens.weight.dtype == torch.bfloat16
    assert json.loads((tmp_path / "bf" / "config.json").read_text())["torch_dtype"] == "bfloat16"
    capsys.readouterr()
    assert main(["export", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["qwen2", "qwen3"])
def test_reexport_of_hf_checkpoints_keeps_their_class(tmp_path, arch):
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM
    Cfg, Model = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "qwen3": (Qwen3Config, Qwen3ForCausalLM)}[arch]
    torch.manual_seed(0)
    ref = Model(Cfg(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
                    num_hidden_layers=2, vocab_size=200, tie_word_embeddings=arch == "qwen2")).eval()
    ref.save_pretrained(tmp_path / "src")
    assert main(["export", "--model", str(tmp_path / "src"), "--out", str(tmp_path / "out")]) == 0
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert type(back) is Model
    idx = torch.randint(0, 200, (1, 16))
    with torch.no_grad():
        assert (back(idx).logits - ref(idx).logits).abs().max().item() < 1e-5
