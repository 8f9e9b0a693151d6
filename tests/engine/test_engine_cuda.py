"""The same model and engine on a CUDA GPU (skipped where there is none): fp32 parity with
transformers on the GPU, and bf16 generation that agrees with the bf16 forward pass."""

import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from groundup.engine import Engine, SamplingParams, Scheduler
from groundup.model import load_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = Qwen3Config(hidden_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                      intermediate_size=256, num_hidden_layers=2, vocab_size=512,
                      max_position_embeddings=256, initializer_range=0.2)
    hf = Qwen3ForCausalLM(cfg).eval()
    d = tmp_path_factory.mktemp("qwen3")
    hf.save_pretrained(d)
    return hf, d


def test_cuda_fp32_parity(qwen3_dir):
    hf, d = qwen3_dir
    torch.backends.cuda.matmul.allow_tf32 = False
    hf = hf.to("cuda")
    ours = load_model(d, device="cuda")
    idx = torch.randint(0, 512, (2, 40), device="cuda")
    with torch.no_grad():
        assert (ours(idx) - hf(idx).logits).abs().max().item() < 1e-3
    prompt = idx[0, :7].tolist()
    ref = hf.generate(idx[:1, :7], do_sample=False, max_new_tokens=32, min_new_tokens=32,
                      eos_token_id=None, pad_token_id=0,
                      attention_mask=torch.ones_like(idx[:1, :7]))[0, 7:].tolist()
    assert Engine(ours).generate(prompt, SamplingParams(max_new_tokens=32)).token_ids == ref


def test_cuda_bf16_generation(qwen3_dir):
    _, d = qwen3_dir
    eng = Engine(load_model(d, dtype=torch.bfloat16, device="cuda"))
    prompt = list(range(5, 17))
    res = eng.generate(prompt, SamplingParams(max_new_tokens=16))
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(4):
            seq.append(int(eng.model(torch.tensor([seq], device="cuda"))[0, -1].argmax()))
    assert res.token_ids[:4] == seq[len(prompt):]       # bf16 rounding may diverge later, not at once
    with Scheduler(eng, max_batch=4) as s:
        hs = [s.submit(prompt, SamplingParams(max_new_tokens=16, temperature=0.8, seed=i)) for i in range(6)]
        assert all(len(h.result(timeout=120).token_ids) == 16 for h in hs)
