"""Muon: the Newton-Schulz orthogonalisation, which weights it takes, and that it trains."""

import pytest
import torch

from groundup.model import ModelConfig, Transformer
from groundup.train.muon import Muon, orthogonalize
from groundup.train.optim import MUON_LR, default_lr, make_optimizer, set_lr


def test_orthogonalize_sets_every_singular_value_near_one():
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(64, 64, generator=g))
    v, _ = torch.linalg.qr(torch.randn(64, 64, generator=g))
    square = u @ torch.diag(torch.logspace(-1, 1, 64)) @ v.T   # singular values 0.1 .. 10
    for G in [square, torch.randn(192, 64, generator=g) * 5.0, torch.randn(64, 192, generator=g)]:
        s = torch.linalg.svdvals(G)
        assert float(s.max() / s.min()) > 3                    # far from orthogonal going in
        o = torch.linalg.svdvals(orthogonalize(G))
        assert o.shape == s.shape and 0.6 < float(o.min()) and float(o.max()) < 1.25
        # the same directions: the orthogonalised matrix points the way G does
        assert float((orthogonalize(G) * G).sum()) > 0.5 * float(s.sum())


def test_block_matrices_take_muon_with_their_splits_and_the_rest_adamw():
    cfg = ModelConfig(vocab_size=128, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16,
                      ffn_dim=96, max_seq_len=32)
    model = Transformer(cfg)
    opt = make_optimizer(model, 1e-3, kind="muon")
    assert isinstance(opt, Muon)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = {names[id(g["params"][0])]: g["splits"] for g in opt.param_groups if g["muon"]}
    assert set(muon) == {f"layers.{i}.{m}.weight" for i in range(2) for m in
                         ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")}
    assert muon["layers.0.self_attn.qkv_proj.weight"] == [64, 32, 32]       # q, k, v (GQA)
    assert muon["layers.1.mlp.gate_up_proj.weight"] == [96, 96]
    assert muon["layers.0.mlp.down_proj.weight"] is None
    adam = [names[id(p)] for g in opt.param_groups if not g["muon"] for p in g["params"]]
    assert "embed_tokens.weight" in adam and "norm.weight" in adam
    set_lr(opt, 1e-3)                                          # the schedule moves both rates together
    rates = {g["muon"]: g["lr"] for g in opt.param_groups}
    assert rates[False] == 1e-3 and abs(rates[True] - 1e-3 * MUON_LR / default_lr(64)) < 1e-12


def test_muon_trains_a_small_model():
    torch.manual_seed(0)
    cfg = ModelConfig.from_depth(1, 64, max_seq_len=32)
    data = torch.randint(0, 64, (8, 33), generator=torch.Generator().manual_seed(1))

    def run(steps, opt=None, model=None):
        if model is None:
            torch.manual_seed(0)
            model = Transformer(cfg)
            model.init_weights()
            opt = make_optimizer(model, default_lr(cfg.dim), kind="muon")
        losses = []
        for _ in range(steps):
            set_lr(opt, default_lr(cfg.dim))
            loss = torch.nn.functional.cross_entropy(model(data[:, :-1]).flatten(0, 1), data[:, 1:].flatten())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        return losses, model, opt

    losses, model, opt = run(40)
    assert losses[-1] < 0.5 * losses[0]                        # memorises 8 random rows
    # its state survives a checkpoint: tests/train/test_train_resume.py (exact resume, Muon too)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_muon_steps_on_cuda_like_on_cpu():
    """On a GPU the Newton-Schulz products run in bf16: the update must still agree with the
    float32 one in direction (the gpu preset trains with Muon)."""
    g = torch.Generator().manual_seed(0)
    G = torch.randn(192, 64, generator=g)
    cpu, gpu = orthogonalize(G), orthogonalize(G.cuda()).cpu()
    assert gpu.dtype == torch.float32
    cos = float((cpu * gpu).sum() / (cpu.norm() * gpu.norm()))
    assert cos > 0.99
