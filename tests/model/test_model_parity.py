"""The model against transformers: tiny random-weight Llama/Qwen2/Qwen3 checkpoints made with
`save_pretrained`, loaded by our loader, compared logit by logit and token by token."""

import json
import zlib

import pytest
import torch
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)

from groundup.engine import Engine, SamplingParams
from groundup.errors import UserError
from groundup.model import ModelConfig, load_model

V = 320
SMALL = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=160,
             num_hidden_layers=2, vocab_size=V, max_position_embeddings=256,
             initializer_range=0.2)   # sharper logits than the default 0.02: no near-ties in greedy

CASES = {
    "llama-gqa-llama3rope": (LlamaConfig, LlamaForCausalLM, dict(rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32}, rope_theta=500000.0)),
    "llama-tied-linearrope": (LlamaConfig, LlamaForCausalLM, dict(tie_word_embeddings=True,
                                                                  rope_scaling={"rope_type": "linear", "factor": 2.0})),
    "qwen2-bias-tied": (Qwen2Config, Qwen2ForCausalLM, dict(tie_word_embeddings=True)),
    "qwen3-qknorm-headdim": (Qwen3Config, Qwen3ForCausalLM, dict(head_dim=32, tie_word_embeddings=False)),
    "llama-mha-sharded": (LlamaConfig, LlamaForCausalLM, dict(num_key_value_heads=4)),
}


def _make(tmp_path_factory, name):
    Cfg, Model, extra = CASES[name]
    torch.manual_seed(zlib.crc32(name.encode()))   # str hash() varies per process
    hf = Model(Cfg(**{**SMALL, **extra})).eval()
    d = tmp_path_factory.mktemp(name)
    hf.save_pretrained(d, max_shard_size="60KB" if "sharded" in name else "5GB")
    return hf, d


@pytest.fixture(scope="module", params=list(CASES))
def pair(request, tmp_path_factory):
    return _make(tmp_path_factory, request.param)


def test_logits_match_transformers(pair):
    hf, d = pair
    ours = load_model(d)
    idx = torch.randint(0, V, (2, 48))
    with torch.no_grad():
        ref = hf(idx).logits
        got = ours(idx)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert (got - ref).abs().max().item() < 1e-4


def test_greedy_32_tokens_match_generate(pair):
    hf, d = pair
    engine = Engine(load_model(d))
    # (an explicit attention_mask: otherwise generate() treats every id equal to pad_token_id as padding)
    for n in (3, 11):
        prompt = torch.randint(0, V, (n,)).tolist()
        ref = hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=32, min_new_tokens=32,
                          eos_token_id=None, pad_token_id=0,
                          attention_mask=torch.ones(1, n, dtype=torch.long))[0, n:].tolist()
        got = engine.generate(prompt, SamplingParams(max_new_tokens=32)).token_ids
        assert got == ref


def test_sharded_checkpoint_really_is_sharded(tmp_path_factory):
    _, d = _make(tmp_path_factory, "llama-mha-sharded")
    index = json.loads((d / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert load_model(d).num_params() > 0


def test_transformers_4x_config_shape(tmp_path_factory):
    """4.x wrote rope_theta + rope_scaling (with "type") at the top level; 5.x writes rope_parameters."""
    hf, d = _make(tmp_path_factory, "llama-gqa-llama3rope")
    cfg = json.loads((d / "config.json").read_text())
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp.pop("rope_theta")
    rp["type"] = rp.pop("rope_type")
    cfg["rope_scaling"] = rp
    (d / "config.json").write_text(json.dumps(cfg))
    ours = load_model(d)
    assert ours.config.rope_scaling["rope_type"] == "llama3" and ours.config.rope_theta == 500000.0
    idx = torch.randint(0, V, (1, 40))
    with torch.no_grad():
        assert (ours(idx) - hf(idx).logits).abs().max().item() < 1e-4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_load(tmp_path_factory, dtype):
    hf, d = _make(tmp_path_factory, "qwen3-qknorm-headdim")
    ours = load_model(d, dtype=dtype)
    assert all(p.dtype == dtype for p in ours.parameters())
    hf_half = type(hf).from_pretrained(d, dtype=dtype).eval()
    idx = torch.randint(0, V, (1, 24))
    with torch.no_grad():
        got, ref = ours(idx), hf_half(idx).logits.float()
    # same op order as transformers -> nearly identical even after bf16 rounding
    assert (got - ref).abs().max().item() < 0.05 * ref.abs().max().item()


def test_loading_keeps_one_copy_and_ties(tmp_path_factory):
    _, d = _make(tmp_path_factory, "qwen2-bias-tied")
    m = load_model(d)
    assert m.lm_head.weight is m.embed_tokens.weight
    assert not any(p.is_meta for p in m.parameters())
    assert m.layers[0].self_attn.qkv_proj.bias is not None


# ------------------------------------------------------------------ bad input

def _edit_config(d, **changes):
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


def test_unsupported_architecture(tmp_path_factory):
    _, d = _make(tmp_path_factory, "llama-mha-sharded")
    _edit_config(d, architectures=["MixtralForCausalLM"])
    with pytest.raises(UserError, match="supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM"):
        load_model(d)


def test_unsupported_rope(tmp_path_factory):
    _, d = _make(tmp_path_factory, "llama-tied-linearrope")
    _edit_config(d, rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0})
    with pytest.raises(UserError, match="unsupported RoPE scaling 'yarn'"):
        load_model(d)


def test_missing_weights(tmp_path_factory):
    _, d = _make(tmp_path_factory, "llama-mha-sharded")
    shard = sorted(d.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(UserError, match="missing"):
        load_model(d)
    _, d2 = _make(tmp_path_factory, "qwen2-bias-tied")
    (d2 / "model.safetensors").unlink()
    with pytest.raises(UserError, match="no weights"):
        load_model(d2)


def test_shape_mismatch(tmp_path_factory):
    _, d = _make(tmp_path_factory, "qwen3-qknorm-headdim")
    _edit_config(d, intermediate_size=128)
    with pytest.raises(UserError, match="shape mismatch .*mlp"):
        load_model(d)


def test_not_a_model_dir(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        load_model(tmp_path)


def test_config_roundtrip_and_depth_dial():
    cfg = ModelConfig.from_depth(6, 1000, max_seq_len=512)
    assert (cfg.dim, cfg.n_layers, cfg.n_heads, cfg.head_dim) == (384, 6, 6, 64)
    assert cfg.ffn_dim % 64 == 0 and cfg.ffn_dim >= 8 * 384 // 3
    back = ModelConfig.from_hf_dict(cfg.to_hf_dict())
    assert back == cfg.replace(torch_dtype="float32")   # to_hf_dict fills in the dtype
    hf = LlamaConfig(**{k: v for k, v in cfg.to_hf_dict().items() if k not in ("architectures", "groundup")})
    assert hf.hidden_size == 384 and hf.head_dim == 64
