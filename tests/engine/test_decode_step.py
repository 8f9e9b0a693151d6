"""The lean decode step (groundup/engine/decode_step.py) computes what the model's forward
computes for one new token per row: the same logits to float32 rounding, the same k/v written
into the cache, the same greedy tokens through the engine -- at batch 1 (int position), for
ragged rows (a position and a mask per row), with q/k/v biases (Qwen2), after the weights change
in place; and the models it does not take fall back to the forward."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

from groundup.engine import Engine, SamplingParams
from groundup.engine.decode_step import LeanDecode
from groundup.engine.kvcache import KVCache
from groundup.model import load_model
from groundup.model.llama import Attention

V = 256
SMALL = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=160,
             num_hidden_layers=2, vocab_size=V, max_position_embeddings=128, initializer_range=0.2)


def _model_dir(tmp_path_factory, cls, cfg_cls, name, **extra):
    torch.manual_seed(0)
    hf = cls(cfg_cls(**SMALL, **extra)).eval()
    d = tmp_path_factory.mktemp(name)
    hf.save_pretrained(d)
    return d


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def model_dir(request, tmp_path_factory):
    if request.param == "llama":
        return _model_dir(tmp_path_factory, LlamaForCausalLM, LlamaConfig, "llama")
    return _model_dir(tmp_path_factory, Qwen2ForCausalLM, Qwen2Config, "qwen2")   # q/k/v with biases


def _assert_close_logits(got, want):
    # float32: both paths round each product and sum (~1e-7 relative), in different orders, through
    # two layers whose weights (std 0.2) amplify a difference by well under 100: 1e-4 of the scale
    scale = want.abs().max().item()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * scale)


def _prefilled(model, prompts):
    """one cache per path, each row holding its prompt's k/v; returns caches and last tokens"""
    B, L = len(prompts), max(len(p) for p in prompts) + 8
    caches = [KVCache(model.config, B, L, torch.float32, "cpu") for _ in range(2)]
    with torch.inference_mode():
        for cache in caches:
            for r, p in enumerate(prompts):
                model(torch.tensor([p[:-1]]), cache.views(r, r + 1), 0)
    return caches


def test_one_row_step_equals_forward(model_dir):
    model = Engine(load_model(model_dir)).model           # the engine's layouts and packed copies
    with torch.inference_mode():
        _one_row(model, LeanDecode(model))


def _one_row(model, lean):
    prompt = torch.randint(0, V, (13,), generator=torch.Generator().manual_seed(1)).tolist()
    a, b = _prefilled(model, [prompt])
    for step in range(5):           # several positions: each step's k/v land where the next reads
        idx = torch.tensor([[prompt[-1] if step == 0 else (7 * step) % V]])
        pos = len(prompt) - 1 + step
        want = model(idx, a.views(0, 1), pos)
        got = lean(idx, b.views(0, 1), pos)
        assert got.shape == want.shape == (1, 1, V) and got.dtype == torch.float32
        _assert_close_logits(got, want)
        torch.testing.assert_close(b.k, a.k, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(b.v, a.v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("manual", [True, False])
@pytest.mark.parametrize("bool_mask", [True, False])
def test_ragged_rows_step_equals_forward(model_dir, monkeypatch, manual, bool_mask):
    monkeypatch.setattr(Attention, "MANUAL_RAGGED_CPU", manual)     # both CPU attention kernels
    model = Engine(load_model(model_dir)).model
    with torch.inference_mode():
        _ragged(model, LeanDecode(model), bool_mask)


def _ragged(model, lean, bool_mask):
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(0, V, (n,), generator=g).tolist() for n in (5, 17, 2, 9)]
    a, b = _prefilled(model, prompts)
    pos = torch.tensor([len(p) - 1 for p in prompts])
    L = int(pos.max()) + 1
    allowed = (torch.arange(L)[None, :] <= pos[:, None]).view(len(prompts), 1, 1, L)
    mask = allowed if bool_mask else torch.zeros(allowed.shape).masked_fill_(~allowed, float("-inf"))
    idx = torch.tensor([[p[-1]] for p in prompts])
    want = model(idx, a.views(0, len(prompts)), pos, mask)
    got = lean(idx, b.views(0, len(prompts)), pos, mask)
    _assert_close_logits(got, want)
    torch.testing.assert_close(b.k, a.k, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b.v, a.v, rtol=1e-5, atol=1e-5)


def test_engine_tokens_with_and_without_the_lean_step(model_dir):
    lean, plain = Engine(load_model(model_dir)), Engine(load_model(model_dir), lean=False)
    assert isinstance(lean.decode, LeanDecode) and not isinstance(plain.decode, LeanDecode)
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(0, V, (n,), generator=g).tolist() for n in (3, 20, 8)]
    params = SamplingParams(max_new_tokens=30)
    lean.eos_ids = plain.eos_ids = ()
    assert lean.generate(prompts[1], params).token_ids == plain.generate(prompts[1], params).token_ids
    assert ([r.token_ids for r in lean.generate_batch(prompts, params)]
            == [r.token_ids for r in plain.generate_batch(prompts, params)])


def test_weights_changed_in_place_are_used(model_dir):
    """RL hands the engine new weights in place (Engine.load_weights): the lean step's
    precomputed norm scales follow, as PackedLinear's copies do"""
    eng = Engine(load_model(model_dir))
    prompt = [5, 9, 200, 31]
    a, b = _prefilled(eng.model, [prompt])
    with torch.inference_mode():
        eng.decode(torch.tensor([[prompt[-1]]]), b.views(0, 1), len(prompt) - 1)   # its scales are built now
    sd = {k: v.clone() for k, v in eng.model.state_dict().items()}
    for k in sd:
        if k.endswith("norm.weight"):
            sd[k].mul_(torch.linspace(0.5, 2.0, sd[k].numel()))
    eng.load_weights(sd)
    a, b = _prefilled(eng.model, [prompt])
    idx = torch.tensor([[prompt[-1]]])
    with torch.inference_mode():
        _assert_close_logits(eng.decode(idx, b.views(0, 1), len(prompt) - 1),
                             eng.model(idx, a.views(0, 1), len(prompt) - 1))


def test_models_it_does_not_take_fall_back_to_forward(tmp_path_factory):
    qwen3 = _model_dir(tmp_path_factory, Qwen3ForCausalLM, Qwen3Config, "qwen3", head_dim=16)   # per-head q/k norms
    eng = Engine(load_model(qwen3))
    assert not LeanDecode.supports(eng.model) and eng.decode is eng.forward
    bf16 = load_model(qwen3, dtype=torch.bfloat16)
    assert not LeanDecode.supports(bf16)
    assert eng.generate([1, 2, 3], SamplingParams(max_new_tokens=4)).usage.completion_tokens >= 1
