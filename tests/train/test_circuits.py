"""Hand-written induction heads: the fresh model copies from its context, a plain one does not."""

import math

import pytest
import torch

from groundup.errors import UserError
from groundup.model.config import ModelConfig
from groundup.model.llama import Transformer
from groundup.model.rope import apply_rope
from groundup.train.circuits import ROPE_THETA, wire_induction_heads
from groundup.train.probes import copy_accuracy


def model(tied=True, depth=3, vocab=1056, **kw):
    torch.manual_seed(0)
    cfg = ModelConfig.from_depth(depth, vocab, max_seq_len=2048, tie_embeddings=tied,
                                 rope_theta=ROPE_THETA, **kw)
    m = Transformer(cfg)
    m.init_weights()
    return m


def attention(m, idx, layer, head):
    """(T, T) attention probabilities of one head, recomputed from the weights."""
    cfg, T = m.config, idx.shape[1]
    H, hd = cfg.n_heads, cfg.head_dim
    cos, sin = m.rope(T, torch.float32, idx.device)
    cos, sin = cos[:T], sin[:T]
    x = m.embed_tokens(idx)
    for blk in m.layers[:layer]:
        x = blk(x, cos, sin)
    blk = m.layers[layer]
    qkv = blk.self_attn.qkv_proj(blk.input_layernorm(x)).view(1, T, 3 * H, hd).transpose(1, 2)
    q = apply_rope(qkv[:, head:head + 1], cos, sin)
    k = apply_rope(qkv[:, H + head:H + head + 1], cos, sin)
    s = (q @ k.transpose(-1, -2))[0, 0] / math.sqrt(hd)
    return s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)


def train_pinned(m, steps):
    """A few AdamW steps on random tokens, the circuit put back after each (as the trainer does);
    returns the generator, for more random tokens after."""
    from groundup.train.circuits import Pins
    from groundup.train.optim import make_optimizer
    pins, opt = Pins(m), make_optimizer(m, 1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randint(0, 1000, (2, 64), generator=g)
        torch.nn.functional.cross_entropy(m(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten()).backward()
        opt.step()
        pins.restore()
        opt.zero_grad()
    return g


@torch.no_grad()
def test_wired_heads_attend_where_the_circuit_says_and_the_model_copies():
    plain = model()
    assert copy_accuracy(plain, 1000) < 0.05
    m = model()
    wire_induction_heads(m, seed=0)
    span = 40
    x = torch.randint(0, 1000, (1, span))
    idx = torch.cat([x, x], 1)
    prev = attention(m, idx, 0, 0)
    assert prev[torch.arange(1, 2 * span), torch.arange(0, 2 * span - 1)].mean() > 0.8
    r = torch.arange(span, 2 * span)
    for h in (0, 1):   # in the second copy, position m looks at the token after m's first occurrence
        assert attention(m, idx, 1, h)[r, r - span + 1].mean() > 0.6
    assert copy_accuracy(m, 1000) > 0.6


@torch.no_grad()
@pytest.mark.parametrize("depth,match", [(5, 1), (8, 1), (8, 2)])
def test_wider_deeper_models_copy_too(depth, match):
    """Two heads copy 2 * head_dim of the content dims -- all of them at depth 3, 128 of 447 at
    depth 8 -- and the copied logit is scaled for it; where random heads and MLPs of layers 0-1
    would still drown the copy (depth 8: six of eight heads are noise), they start silent. At
    depth 8 the fresh model once copied 0%. Depth 8 with match=2 is the gpu preset's wiring:
    layer 0 then holds three position heads."""
    m = model(depth=depth)
    info = wire_induction_heads(m, seed=0, match=match)
    assert copy_accuracy(m, 1000) > 0.6
    assert info["silenced"] and info["copy_acc"] > 0.9   # both widths need it; measured after
    wired = {0: 1 + match, 1: 2}                         # heads the circuit uses, layers 0 and 1
    for i, layer in enumerate(m.layers):
        free = layer.self_attn.o_proj.weight[:, wired.get(i, 0) * m.config.head_dim:]
        silent = free.abs().max() == 0 and layer.mlp.down_proj.weight.abs().max() == 0
        assert silent == (info["silenced"] and i < 2)
    shallow = model(depth=3)
    assert not wire_induction_heads(shallow, seed=0)["silenced"]   # depth 3: noise kept


@torch.no_grad()
def test_matching_two_tokens_tells_apart_what_one_token_cannot():
    m = model()                                      # depth 3: 3 heads, a position head 2 back
    wire_induction_heads(m, seed=0, match=2)
    torch.manual_seed(1)
    filler = torch.randint(100, 1000, (3, 20))
    a, c, x, b, d = 10, 11, 12, 13, 14               # "a x b" ... "c x d" ... "a x" -> b, not d
    idx = torch.cat([filler[0], torch.tensor([a, x, b]), filler[1], torch.tensor([c, x, d]),
                     filler[2], torch.tensor([a, x])])[None]
    b_at = 20 + 2
    d_at = 20 + 3 + 20 + 2
    p = attention(m, idx, 1, 1)[-1]                  # the last position, "x" after "a"
    assert p[b_at] > 0.8 and p[d_at] < 0.1
    single = attention(m, idx, 1, 0)[-1]             # the one-token head: either place will do
    assert single[b_at] + single[d_at] > 0.8


@torch.no_grad()
def test_matching_two_tokens_copies_lines_with_repeated_tokens_better():
    """Random sequences over a small alphabet (every token recurs) written twice: a one-token
    match jumps to the wrong recurrence, a two-token match much less often. Both copy
    sequences without repeats as well as ever (no content dims were given up)."""
    acc = {}
    for match in (1, 2):
        m = model(vocab=4096)
        wire_induction_heads(m, seed=0, match=match)
        acc[match] = [copy_accuracy(m, n, rows=16) for n in (4096, 30)]
    assert acc[2][0] > 0.9 and acc[1][0] > 0.9
    assert acc[2][1] > acc[1][1] + 0.1


@torch.no_grad()
def test_untied_head_starts_as_the_embeddings_and_copies_too():
    m = model(tied=False)
    wire_induction_heads(m, seed=0)
    assert torch.equal(m.lm_head.weight, m.embed_tokens.weight)
    assert m.lm_head.weight is not m.embed_tokens.weight
    assert copy_accuracy(m, 1000) > 0.6


def test_models_without_room_for_the_circuit_are_refused():
    with pytest.raises(UserError, match="depth >= 2"):
        wire_induction_heads(model(depth=1))
    with pytest.raises(UserError, match="needs >= 3 heads"):
        wire_induction_heads(model(depth=2), match=2)
    with pytest.raises(UserError, match="rope_theta"):   # theta 10k: too few slow pairs
        torch.manual_seed(0)
        m = Transformer(ModelConfig.from_depth(3, 1056, max_seq_len=2048))
        m.init_weights()
        wire_induction_heads(m)


def test_pins_hold_the_circuit_through_training_and_survive_save_and_load(tmp_path):
    from groundup.model.checkpoint import load_model, save_model
    from groundup.train.circuits import Pins, wired_entries

    m = model(depth=2)
    wire_induction_heads(m, seed=0)
    before = {k: v.detach().clone() for k, v in m.state_dict().items()}
    g = train_pinned(m, steps=3)
    after = m.state_dict()
    for name, mask in wired_entries(m).items():
        assert torch.equal(after[name][mask], before[name][mask]), name     # pinned: untouched
        if (~mask).any():                                                   # the rest trained
            assert not torch.equal(after[name][~mask], before[name][~mask]), name
    # the constant dim follows the trained embeddings: a fixed share of each one's energy
    E, D = after["embed_tokens.weight"], m.config.dim
    content = E[:, :D - 1 - m.config.head_dim]
    assert torch.allclose(E[:, -1], 0.5 * content.norm(dim=1))
    with torch.no_grad():   # and the heads still look where the circuit says
        x = torch.randint(0, 1000, (1, 40), generator=g)
        idx, r = torch.cat([x, x], 1), torch.arange(40, 80)
        assert attention(m, idx, 0, 0)[torch.arange(1, 80), torch.arange(0, 79)].mean() > 0.8
        assert attention(m, idx, 1, 0)[r, r - 39].mean() > 0.6
    # fine-tuning loads the model from disk: the record comes along, and with it the pins
    save_model(m, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.config.extra["wired_induction"] == {"match": 1} and Pins(loaded)
    plain = model(depth=2)
    assert not Pins(plain)


def test_two_token_matching_leaves_the_position_heads_unused_value_rows_to_training():
    """match=2 takes layer 0's last free head at depth 3; the position heads' value rows that the
    circuit does not use (32, 16 and 16 of 64 are used) and their output columns train."""
    m = model()
    wire_induction_heads(m, seed=0, match=2)
    assert m.config.extra["wired_induction"] == {"match": 2, "free_values": True}
    hd = m.config.head_dim
    before = m.layers[0].self_attn.o_proj.weight.detach().clone()
    train_pinned(m, steps=2)
    after = m.layers[0].self_attn.o_proj.weight.detach()
    content = slice(0, m.config.dim - 1 - hd)
    for h, used in enumerate((32, 16, 16)):
        cols = slice(h * hd, h * hd + used)
        assert torch.equal(after[:, cols], before[:, cols])                 # the circuit: pinned
        free = slice(h * hd + used, (h + 1) * hd)
        assert before[:, free].abs().max() == 0                             # starts silent...
        assert after[content, free].abs().max() > 0                         # ...and learns
        assert after[m.config.dim - 1 - hd:m.config.dim - 1, free].abs().max() == 0   # nor the spaces


@torch.no_grad()
def test_the_circuits_view_of_a_head_is_the_models_own():
    """circuits.py writes into heads only through qkv_rows / o_cols / attention_weights, and
    assumes RoPE turns channel pairs (i, i + head_dim/2). Recomputed from those slices alone, by
    hand, an attention layer must give the model's own forward -- so if llama.py changes its fused
    layout (or RoPE its pairing), this fails here rather than silently unwiring the speedrun."""
    from groundup.model.rope import inv_frequencies
    from groundup.train.circuits import attention_weights, o_cols, qkv_rows
    m = model(depth=3).double()
    cfg, T, half = m.config, 12, m.config.head_dim // 2
    x = torch.randn(T, cfg.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    W, Wo = attention_weights(m, 1)
    W.mul_(10)                                         # sharp attention: a wrong layout shows
    ang = torch.arange(T).float()[:, None] * inv_frequencies(cfg)[None]    # (T, hd/2): float32, as the model's table
    c, s = ang.cos().double(), ang.sin().double()

    def rope(z):                                       # (T, hd): pair i = channels (i, i + hd/2)
        a, b = z[:, :half], z[:, half:]
        return torch.cat([a * c - b * s, a * s + b * c], -1)

    def by_hand(rows):
        out = torch.zeros(T, cfg.dim, dtype=torch.float64)
        later = torch.ones(T, T, dtype=torch.bool).triu(1)
        for h in range(cfg.n_heads):
            q, k, v = (x @ W[rows(p, h)].T for p in "qkv")                 # (T, hd) each
            att = (rope(q) @ rope(k).T / math.sqrt(cfg.head_dim)).masked_fill(later, float("-inf"))
            out += att.softmax(-1) @ v @ Wo[:, o_cols(cfg, h)].T           # (T, D)
        return out

    cos, sin = m.rope(T, torch.float64, x.device)
    got = m.layers[1].self_attn(x[None], cos[:T], sin[:T])[0]
    # the only difference: the cos/sin table's float32 rounding (~6e-8 relative), at most ~1e-6 here
    assert torch.allclose(got, by_hand(lambda p, h: qkv_rows(cfg, p, h)), rtol=1e-5, atol=1e-6)
    swapped = {"q": "k", "k": "q", "v": "v"}           # a layout the model does not have: far off
    assert (got - by_hand(lambda p, h: qkv_rows(cfg, swapped[p], h))).abs().max() > 1e-2
