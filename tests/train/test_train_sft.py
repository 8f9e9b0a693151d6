"""The library API in-process: pretrain -> sft, loss only on assistant tokens, bad input refused."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from groundup.chat.format import render_conversation
from groundup.errors import UserError
from groundup.io import read_jsonl
from groundup.model import load_model
from groundup.model.loss import linear_cross_entropy
from groundup.tokenizer import load_tokenizer
from groundup.train.data import IGNORE, PackedRows, prepare_sft_data
from groundup.train.trainer import SFTConfig, TrainConfig, pretrain, sft

TOOLS = [{"name": "read_file", "description": "Read a file.",
          "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                         "required": ["path"]}}]
USER_TEXT = "please look at zebra.py"
TOOL_TEXT = "QUOKKA = 41"


def conversation(i: int):
    return [{"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": f"{USER_TEXT} {i}"},
            {"role": "assistant", "content": "Reading it.",
             "tool_calls": [{"id": "c1", "name": "read_file", "arguments": {"path": "zebra.py"}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "read_file", "content": TOOL_TEXT},
            {"role": "assistant", "content": f"It sets QUOKKA to 41 ({i})."}]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny matrices: a second thread only waits for a busy core on a shared machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def base_run(one_thread, corpus_dir, tok_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "base"
    cfg = TrainConfig(out=str(out), data=[str(corpus_dir)], tokenizer=str(tok_dir), depth=1, seq_len=32,
                      context_len=128, batch_size=4, steps=4, eval_every=2, eval_tokens=256,
                      save_every=2, sample_tokens=8, quiet=True, device="cpu")
    assert pretrain(cfg) == out
    return out, cfg


def test_pretrain_writes_a_model_directory_and_skips_when_finished(base_run):
    out, cfg = base_run
    model = load_model(out)
    assert model.config.max_seq_len == 128 and model.config.n_layers == 1
    assert load_tokenizer(out).vocab_size == model.config.vocab_size
    recs = list(read_jsonl(out / "metrics.jsonl"))
    assert [r["step"] for r in recs if "loss" in r] == [1, 2, 3, 4]
    evals = [r for r in recs if "val_loss" in r]
    assert [r["step"] for r in evals] == [0, 2, 4] and all("val_bpb" in r and "sample" in r for r in evals)
    assert all("copy_acc" in r and "val_turn_acc" not in r for r in evals)   # turns: fine-tuning only
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    assert pretrain(cfg) == out                                # finished: nothing retrained
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime


def test_incompatible_resume_and_foreign_directories_are_refused(base_run, tmp_path):
    out, cfg = base_run
    import dataclasses
    with pytest.raises(UserError, match="depth: 1 -> 2"):
        pretrain(dataclasses.replace(cfg, depth=2))
    with pytest.raises(UserError, match="optimizer: 'adamw' -> 'muon'"):
        pretrain(dataclasses.replace(cfg, optimizer="muon"))
    with pytest.raises(UserError, match="pass --resume"):
        pretrain(dataclasses.replace(cfg, resume=False))
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a groundup training run"):
        pretrain(dataclasses.replace(cfg, out=str(tmp_path / "x")))
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["notes.txt"]
    with pytest.raises(UserError, match="above --context-len"):
        pretrain(dataclasses.replace(cfg, out=str(tmp_path / "y"), seq_len=256))
    with pytest.raises(UserError, match="above the context"):
        sft(SFTConfig(init=str(out), out=str(tmp_path / "z"), seq_len=256), [([1, 2], [0, 1])])
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_user_turns_and_tool_results_carry_no_loss(tok_dir, tmp_path):
    tok = load_tokenizer(tok_dir)
    exs = [render_conversation(conversation(i), TOOLS, tok) for i in range(3)]
    d = prepare_sft_data(exs, tmp_path / "sft", seq_len=255, pad_id=tok.eos_id, val_fraction=0.0)
    rows = PackedRows(d, "train", 255)
    x, y = rows.rows(np.arange(rows.n_items))                 # (N, T)
    learned = tok.decode(y[y != IGNORE].tolist())
    assert "Reading it." in learned and "read_file" in learned and "QUOKKA to 41" in learned
    assert "please look" not in learned and TOOL_TEXT not in learned and "coding agent" not in learned
    # and the trainer's loss (the head fused in, model/loss.py) really has no gradient there:
    # d loss / d h == 0 at every ignored target, for the last hidden states h of each position
    h = torch.randn(*y.shape, 32, requires_grad=True)          # (N, T, C)
    head = torch.randn(tok.vocab_size, 32, requires_grad=True)  # (V, C)
    linear_cross_entropy(h, head, y.long()).backward()
    per_pos = h.grad.abs().sum(-1)                             # (N, T)
    assert (per_pos[y == IGNORE] == 0).all()
    assert (per_pos[y != IGNORE] > 0).all()
    # the ignored targets are exactly the user text, tool results, system, tools and headers
    ignored = tok.decode(x[y == IGNORE].tolist())
    assert "please look" in tok.decode(x[0].tolist()) and len(ignored) > 0


def test_sft_trains_on_assistant_tokens_and_yields_a_model_directory(base_run, tok_dir, tmp_path):
    out, _ = base_run
    tok = load_tokenizer(out)
    exs = [render_conversation(conversation(i % 4), TOOLS, tok) for i in range(24)]
    cfg = SFTConfig(init=str(out), out=str(tmp_path / "sft"), seq_len=128, batch_size=4, steps=12,
                    lr=3e-3, eval_every=6, eval_tokens=512, save_every=6, sample_tokens=8, quiet=True, device="cpu",
                    sample_prompt_ids=render_conversation(conversation(0)[:2], TOOLS, tok)[0])
    run = sft(cfg, exs)
    recs = list(read_jsonl(run / "metrics.jsonl"))
    loss = [r["loss"] for r in recs if "loss" in r]
    assert len(loss) == 12 and loss[-1] < loss[0]
    evals = [r for r in recs if "val_loss" in r]
    assert [r["step"] for r in evals] == [0, 6, 12]
    assert all(0.0 <= r["val_turn_acc"] <= 1.0 and 0.0 <= r["copy_acc"] <= 1.0 for r in evals)
    meta = json.loads((run / "data" / "meta.json").read_text())
    assert meta["train"]["examples"] + meta["val"]["examples"] == 24
    model = load_model(run)
    assert model.config.max_seq_len == 128
    assert load_tokenizer(run).vocab_size == tok.vocab_size
    assert sft(cfg, exs) == run                                # finished: skipped


def test_samples_come_from_the_engine_and_match_a_plain_forward_loop():
    """The trainer's samples go through the inference engine: the same tokens as a forward over
    the whole sequence at every step, sampled in HF's order (temperature, top-k, draw) with the
    sample's own generator -- and the model is left as training found it."""
    from groundup.model import ModelConfig, Transformer
    from groundup.train.validation import generate_sample
    torch.manual_seed(0)
    m = Transformer(ModelConfig.from_depth(1, 300, max_seq_len=40))
    m.init_weights()
    for p in m.parameters():
        p.data.mul_(5)                                       # peaked distributions: a real test
    before = {k: (v.clone(), v.stride()) for k, v in m.state_dict().items()}
    m.train()
    got = generate_sample(m, [1, 2, 3], 30, seed=5)
    g, ids = torch.Generator().manual_seed(5), [1, 2, 3]
    with torch.no_grad():
        for _ in range(30):
            logits = m(torch.tensor([ids]))[0, -1] / 0.8
            logits = logits.masked_fill(logits < torch.topk(logits, 40).values[-1], float("-inf"))
            ids.append(int(torch.multinomial(torch.softmax(logits, -1), 1, generator=g)))
    assert got == ids[3:]
    assert m.training                                        # back in training mode
    for k, v in m.state_dict().items():                      # same values, same layout
        assert torch.equal(v, before[k][0]) and v.stride() == before[k][1], k
    from groundup.engine.cpu_linear import PackedLinear
    assert not any(isinstance(mod, PackedLinear) for mod in m.modules())   # no packed copies
    rng = torch.get_rng_state()
    assert len(generate_sample(m, list(range(60)), 10, seed=1)) == 10   # a prompt past the context
    assert torch.equal(rng, torch.get_rng_state())           # the training RNG did not move


def test_turn_hits_counts_runs_of_targets_reproduced_exactly():
    from groundup.train.data import IGNORE
    from groundup.train.probes import turn_hits
    I = IGNORE
    y = torch.tensor([[I, 5, 6, I, I, 7, 8, 9],          # two turns in the first row
                      [1, 2, I, 3, I, I, I, I]])         # a turn at the row start, and one of one token
    assert turn_hits(y.clamp(min=0), y) == (4, 4)        # predicting every target: all exact
    pred = y.clamp(min=0).clone()
    pred[0, 7] = 0                                       # one wrong token spoils its whole turn
    pred[1, 2] = 0                                       # a wrong prediction where nothing counts: no effect
    assert turn_hits(pred, y) == (4, 3)
    assert turn_hits(pred, torch.full_like(y, I)) == (0, 0)


def test_lr_scale_multiplies_the_default_fine_tuning_rate(base_run, tok_dir, tmp_path):
    """lr=None is a third of the pretraining rate for the width; lr_scale multiplies it (the cpu
    speedrun fine-tunes at 3x)."""
    out, _ = base_run
    tok = load_tokenizer(out)
    exs = [render_conversation(conversation(i % 4), TOOLS, tok) for i in range(8)]
    lrs = {}
    for scale in (1.0, 3.0):
        cfg = SFTConfig(init=str(out), out=str(tmp_path / f"s{scale}"), seq_len=128, batch_size=4,
                        steps=3, lr_scale=scale, eval_every=100, save_every=100, quiet=True,
                        device="cpu")
        recs = list(read_jsonl(sft(cfg, exs) / "metrics.jsonl"))
        lrs[scale] = [r["lr"] for r in recs if "loss" in r]
    assert len(lrs[1.0]) == 3 and max(lrs[1.0]) > 0
    assert lrs[3.0] == pytest.approx([3 * x for x in lrs[1.0]])


def loss_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """the reference: torch's cross-entropy of materialised logits, summed over counted targets"""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.flatten(), ignore_index=IGNORE,
                           reduction="sum")


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("autocast", [False, True])
def test_fused_loss_gives_the_full_forwards_loss_and_gradients(autocast, fused, monkeypatch):
    """The trainer's loss, model(x, targets=y), folds the output head into the cross-entropy
    and runs it on the counted positions only (model/loss.py): the loss and every parameter's
    gradient must be those of the full (B, T, V) logits through torch's cross_entropy -- with a
    tied head (its gradient has two sources), a row without any target, and under bf16 autocast."""
    from groundup.model import ModelConfig, Transformer
    torch.manual_seed(0)
    m = Transformer(ModelConfig.from_depth(2, 300, max_seq_len=64, tie_embeddings=True))
    m.init_weights()
    x = torch.randint(0, 300, (3, 64))
    y = torch.randint(0, 300, (3, 64))
    y[:, :20] = IGNORE                                        # a prompt, then a turn, then a result
    y[1, 40:55] = IGNORE
    y[2] = IGNORE                                             # a row with no target at all
    import groundup.model.llama as llama
    from groundup.model.loss import linear_cross_entropy
    # fused=False: the path a GPU takes (the plain head on the selected rows), forced on the CPU
    monkeypatch.setattr(llama, "linear_cross_entropy", lambda *a: linear_cross_entropy(*a, fused=fused))
    def grads(ours: bool, bf16: bool):
        m.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = m(x, targets=y) if ours else loss_sum(m(x), y)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}

    full, g_full = grads(False, autocast)
    part, g_part = grads(True, autocast)
    assert part.dtype == torch.float32 and full.dtype == torch.float32
    if not autocast:
        assert torch.allclose(part, full, rtol=1e-5)
        for n, g in g_full.items():
            scale = float(g.abs().max())
            assert torch.allclose(g_part[n] / scale, g / scale, rtol=1e-4, atol=1e-5), n
    else:
        # Two bf16 computations round at different points (the fused head works in chunks,
        # and which bf16 kernels run depends on the CPU's vector unit), so they cannot be
        # compared element by element. Compare both with the float32 truth instead: ours must
        # be as close to it as torch's own bf16 path, and within a few bf16 roundings
        # (unit roundoff u = 2^-8) of it.
        u = 2.0 ** -8
        _, g_true = grads(False, False)
        for n, g in g_true.items():
            norm = float(g.norm())
            err_ours = float((g_part[n] - g).norm()) / norm
            err_torch = float((g_full[n] - g).norm()) / norm
            assert err_ours <= 1.5 * err_torch + u / 4 and err_ours <= 4 * u, (n, err_ours, err_torch)
        assert abs(float(part) - float(full)) <= 4 * u * abs(float(full))
    # nothing counts: a zero loss that still back-propagates (zero gradients)
    m.zero_grad()
    none = m(x, targets=torch.full_like(y, IGNORE))
    none.backward()
    assert float(none.detach()) == 0.0 and all(float(p.grad.abs().max()) == 0.0 for p in m.parameters())


def test_select_gives_the_rows_of_the_full_logits():
    """evaluation asks for the logits of the counted positions only (select=): the same rows, in row order"""
    from groundup.model import ModelConfig, Transformer
    torch.manual_seed(0)
    m = Transformer(ModelConfig.from_depth(2, 300, max_seq_len=64))
    m.init_weights()
    x = torch.randint(0, 300, (3, 64))
    sel = torch.rand(3, 64) < 0.3
    logits = m(x, select=sel)
    assert logits.shape == (int(sel.sum()), 300)
    assert torch.allclose(logits, m(x)[sel], atol=1e-5)


def test_auto_dtype_takes_bf16_on_a_cpu_only_with_amx(monkeypatch):
    """AVX512-BF16 alone trained 1.5x slower than fp32 (docs/04): only AMX makes bf16 the pick."""
    from groundup.train.precision import cpu_has_fast_bf16, resolve_dtype
    cfg = TrainConfig(data="x", out="y", dtype="auto")
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not cpu_has_fast_bf16() and resolve_dtype(cfg, cpu) == "float32"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert cpu_has_fast_bf16() and resolve_dtype(cfg, cpu) == "bfloat16"
    assert resolve_dtype(TrainConfig(data="x", out="y", dtype="float32"), cpu) == "float32"
