"""Induction heads written into a fresh model's weights before pretraining starts.

    wire_induction_heads(model, seed) -> dict      after init_weights(), before the first step
    Pins(model); pins.restore()                    keep the circuit through training (each step)

Why: an agent copies all the time (a test id into a command, a path from grep's output into
read_file, the buggy line into edit_file), and transformers copy with *induction heads*
(Olsson et al., 2022). They form by themselves only after a long plateau -- longer than a
2-core, 30-minute budget (no model of the cpu runs trained from a plain init copied at all:
docs/lab/2026-12-03-speedrun-runs.md). So we do not wait for gradient descent to find them: we write the two-head
circuit into the initial weights, and training starts from a model that already copies and
then adapts it (and everything around it) to the data. Only weight *values* change: the
result is a plain Llama checkpoint that transformers loads like any other.

The circuit. At init the residual stream of width D is split: the token embedding keeps most
dims ("content"); two spaces of head_dim/2 dims each, "previous" and "current", start empty; the
last dim is a constant (every embedding holds ~20% of its energy there, kept so by Pins).

1. Layer 0, heads 0 and 1 -- *position heads*. Their q and k read only the constant dim, so they
   are the same vector at every position, and RoPE alone decides where they look: k is
   pre-rotated by `o` steps of each fast frequency, so q_m . k_n = sum_i w^2 cos((m-n-o) th_i),
   largest at n = m - o. Head 0 (o = 1) writes a projection R of the previous token's content
   into "previous", head 1 (o = 0) the current token's into "current".
2. Layer 1, heads 0 and 1 -- the *induction heads*. The query reads "current", the key
   "previous", through the same map, so q_m . k_n is large where token n-1 is token m: the
   place the current token occurred before, one step on. They compare on RoPE's slow pairs
   only (turning < 0.7 rad across the context, so the match barely depends on distance) --
   hence rope_theta = 500,000 for wired models (Llama 3's value): 12 of 32 pairs are slow
   enough over 2,048 positions, against 4 with the classic 10,000. Their values read the
   content at n (what followed last time) and write it back, where the tied output head turns
   it into that token's logit.
3. Optionally (match=2) head 1 compares the last *two* tokens, so that a token that occurs
   twice in the line being copied (`lenses[nugget] - lenses[deck - 1]`: which `[` is this?)
   no longer sends the copy back to the wrong one. A third position head (o = 2) and the same
   two spaces, split in halves a | b: previous = [R_a x_n-1 | R_b x_n-2], current = [R_a x_m |
   R_b x_m-1] (head 0 writes both of token n-1's projections). Head 0 compares the a halves
   (one token), head 1 the whole spaces (two) -- no dims taken from the content (a third space
   for the third token, taken from the content, copied worse). At depth 3 the third position
   head is layer 0's last free head, so the position heads' value rows that the circuit does
   not use are left to training (`_free_values`): pinned, they cost the language model more
   than the second token gains.

What the heads write is scaled to the embeddings' norm (written at the norm RMSNorm gives, it
drowned every token's identity: the model copied and learned the language worse). The q/k rows,
the position heads and the reserved dims are *pinned*: put back after every optimizer step, in
pretraining and fine-tuning alike (config.json records `"groundup": {"wired_induction":
{"match": 1}}`); without the pins AdamW, whose steps are the same size for every weight, buried
the circuit within 40 steps. The induction heads' values and outputs, and everything else,
train as usual.

What it buys, measured (the numbers: docs/lab/2026-12-03-measurements-behind-the-code.md): a
fresh wired model copies nearly every random token where a plain init copies none, and after the
cpu preset's pretraining its validation loss is lower than a plain init's.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from groundup.errors import UserError
from groundup.model.rope import inv_frequencies
from groundup.train.probes import copy_accuracy

ROPE_THETA = 500_000.0       # wired models need many slow RoPE pairs (see above)
_FAST_PAIRS = 8              # the previous-token head uses the 8 fastest pairs...
_PREV_WEIGHT = 18.0          # ...each contributing w^2 = 324: a softmax margin of ~40 at n = m-1
_MATCH_GAIN = 32.0           # scale of the induction heads' q and k (sharpness of the match)
_SLOW_ANGLE = 0.7            # a pair is "slow" if it turns less than this over the context
_MIN_SLOW_PAIRS = 8          # fewer channels match content too loosely (4 pairs: copies 45%)
_RESERVED_SHARE = 0.5       # norm of what layer 0 writes in each reserved space, per embedding norm
_COPY_SHARE = 2.0           # norm of what the induction heads copy, per embedding norm
_CONST_SHARE = 0.2           # share of an embedding's energy in the constant dim
_MIN_COPY = 0.9              # a fresh wired model that copies less has its noise silenced


def _orthonormal_rows(rows: int, cols: int, g: torch.Generator) -> torch.Tensor:
    """(rows, cols) with orthonormal rows (rows <= cols): a random rotation, cut."""
    q, _ = torch.linalg.qr(torch.randn(cols, cols, generator=g))
    return q[:rows].contiguous()


# ----------------------------------------------------------------------------- the model's layout
# The one place that knows where a head lives in llama.py's weights. tests/train/test_circuits.py
# recomputes an attention layer from these slices alone and compares it with the model's own
# forward, so a change of layout there fails that test instead of silently unwiring the circuit.

def qkv_rows(cfg, part: str, head: int) -> slice:
    """Rows of head `head`'s q, k or v in a layer's fused qkv_proj weight: llama.py stacks
    n_heads*head_dim rows of q, then of k, then of v (no grouped-query attention here)."""
    start = ("q", "k", "v").index(part) * cfg.n_heads * cfg.head_dim + head * cfg.head_dim
    return slice(start, start + cfg.head_dim)


def o_cols(cfg, head: int) -> slice:
    """Columns of o_proj's weight that read head `head`'s output."""
    return slice(head * cfg.head_dim, (head + 1) * cfg.head_dim)


def attention_weights(model, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(qkv_proj.weight, o_proj.weight) of a layer: (3 * H * hd, D) and (D, H * hd)."""
    att = model.layers[layer].self_attn
    return att.qkv_proj.weight, att.o_proj.weight


def check_wirable(cfg, match: int = 1) -> None:
    hd = cfg.head_dim
    if cfg.n_layers < 2 or cfg.n_heads < 2 or cfg.n_kv_heads != cfg.n_heads or cfg.qk_norm:
        raise UserError("wiring induction heads needs >= 2 layers and >= 2 heads per layer, no "
                        f"grouped-query attention, no QK norm (got {cfg.n_layers} layers, "
                        f"{cfg.n_heads} heads, {cfg.n_kv_heads} kv heads) -- use depth >= 2")
    if match not in (1, 2) or (match == 2 and cfg.n_heads < 3):
        raise UserError(f"induction heads match 1 or 2 tokens, and 2 needs >= 3 heads (got match "
                        f"{match}, {cfg.n_heads} heads) -- use --induction-match 1 or depth >= 3")
    if cfg.dim - 1 - hd < hd // 2 or hd < 2 * _FAST_PAIRS:
        raise UserError(f"wiring induction heads needs a wider model (got width {cfg.dim}, "
                        f"head_dim {hd}, {cfg.n_heads} heads)")


def _offsets(cfg) -> tuple[int, ...]:
    """What layer 0's position heads look at: one back, itself, and -- when the second induction
    head matches two tokens -- two back."""
    return (1, 0, 2) if cfg.extra["wired_induction"]["match"] == 2 else (1, 0)


def _value_rows(cfg) -> list[int]:
    """How many value rows of each position head the circuit uses (in _offsets order)."""
    S = cfg.head_dim // 2
    return [S, S // 2, S // 2] if cfg.extra["wired_induction"]["match"] == 2 else [S, S]


def _free_values(cfg) -> bool:
    """match=2 takes layer 0's last free head at depth 3, so the position heads' unused value rows
    (and their output columns) are left to training: they see the tokens 0, 1 and 2 back, and
    may carry what they like into the content. Written into config.json, so models wired before
    keep every row pinned."""
    return bool(cfg.extra["wired_induction"].get("free_values"))


def _layout(cfg) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """content dims, the two reserved spaces ("previous", "current"), the constant dim."""
    D, S = cfg.dim, cfg.head_dim // 2
    first = D - 1 - 2 * S
    return torch.arange(0, first), [torch.arange(first + j * S, first + (j + 1) * S) for j in range(2)], D - 1


def _position_head(W, cfg, head, const, theta, x_const, offset: int) -> None:
    """q and k rows of a head that attends to position m - offset, whatever the tokens: both read
    only the constant dim; k is pre-rotated by `offset` steps of each fast frequency, so that
    q_m . k_n = sum_i w^2 cos((m - n - offset) th_i), largest at n = m - offset. RoPE rotates
    channel pairs (i, i + head_dim/2) by position * theta_i (model/rope.py)."""
    half = cfg.head_dim // 2
    start_q, start_k = qkv_rows(cfg, "q", head).start, qkv_rows(cfg, "k", head).start
    W[qkv_rows(cfg, "q", head)] = 0.0
    W[qkv_rows(cfg, "k", head)] = 0.0
    for i in range(_FAST_PAIRS):
        th = float(theta[i]) * offset
        W[start_q + i, const] = _PREV_WEIGHT / x_const                     # q pair i = (w, 0)
        W[start_k + i, const] = _PREV_WEIGHT * math.cos(th) / x_const      # k pair i = R(th)(w, 0)
        W[start_k + i + half, const] = _PREV_WEIGHT * math.sin(th) / x_const


def wired_model(mcfg, seed: int, match: int = 1):
    """What pretraining calls: a freshly initialised Transformer of `mcfg` (with the rope_theta
    the circuit needs) with the circuit written in, and a line for the log. Training then keeps
    the circuit with Pins(model) after every optimizer step."""
    from groundup.model import Transformer
    torch.manual_seed(seed)
    model = Transformer(dataclasses.replace(mcfg, rope_theta=ROPE_THETA, extra=dict(mcfg.extra)))
    model.init_weights()
    wired = wire_induction_heads(model, seed, match)
    note = (f"wired position heads and two induction heads into the initial weights (copies "
            f"{wired['copy_acc']:.0%} of random tokens"
            f"{'; the other heads and MLPs of layers 0-1 start silent' if wired['silenced'] else ''})")
    return model, note


@torch.no_grad()
def wire_induction_heads(model, seed: int = 0, match: int = 1) -> dict:
    """Write the position heads (layer 0) and two induction heads (layer 1) into `model`'s
    freshly initialised weights. match=2: the second induction head looks for the last two
    tokens, not one (a third position head, two back; see the module's docstring). Returns a few
    numbers for the log: slow RoPE pairs used, whether layers 0-1 were silenced, and the share
    of random tokens the wired model copies."""
    cfg = model.config
    check_wirable(cfg, match)
    cfg.extra["wired_induction"] = {"match": match}     # config.json keeps it: Pins, the layout
    if match == 2:
        cfg.extra["wired_induction"]["free_values"] = True
    D, hd = cfg.dim, cfg.head_dim
    half = hd // 2                                      # RoPE pair i is channels (i, i + half)
    g = torch.Generator().manual_seed(seed)
    content, spaces, const = _layout(cfg)
    prev, cur = spaces[0], spaces[1]
    first = int(prev[0])                                # reserved dims: [first, const)
    nC, S = len(content), len(prev)
    theta = inv_frequencies(cfg)                        # (half,) angular frequency per pair

    # --- embeddings: content as initialised, the reserved spaces empty, the constant
    E = model.embed_tokens.weight                       # (V, D)
    E[:, first:const] = 0.0
    set_constant(E, cfg)
    x_const = math.sqrt(_CONST_SHARE * D)               # the constant dim after layer 0's RMSNorm
    # What the heads write must be on the embeddings' scale, or it drowns the token's identity
    # in the residual stream: each reserved space gets half an embedding's norm, the copy two.
    e_norm = float(E[:, content].norm(dim=1).mean())
    x_norm = math.sqrt((1 - _CONST_SHARE) * D)          # |content| after layer 0's RMSNorm
    write = _RESERVED_SHARE * e_norm / (x_norm * math.sqrt(S / nC))

    # --- layer 0: head 0 looks one back, head 1 at itself; each writes (a projection R of) the
    #     content it sees into its own space, "previous" and "current". match=2 splits both
    #     spaces in halves a | b: head 0 writes R_a(token n-1) into previous.a and R_b(token n-1)
    #     into current.b, head 1 R_a(token n) into current.a, head 2 (two back) R_b(token n-2)
    #     into previous.b -- so current = [R_a x_m | R_b x_m-1] and previous = [R_a x_n-1 |
    #     R_b x_n-2], and comparing the whole spaces compares two tokens with no extra dims
    W, Wo = attention_weights(model, 0)
    R = _orthonormal_rows(S, nC, g)                     # (S, nC) content -> S channels
    h2 = S // 2
    a, b = slice(0, h2), slice(h2, S)                   # the halves (match=2)
    writes = ([[(R, prev)], [(R, cur)]] if match == 1 else
              [[(R[a], prev[a]), (R[b], cur[b])], [(R[a], cur[a])], [(R[b], prev[b])]])
    Wo[first:const] = 0.0                               # no other head writes the spaces
    for h, offset in enumerate(_offsets(cfg)):
        _position_head(W, cfg, h, const, theta, x_const, offset)
        v, o = qkv_rows(cfg, "v", h).start, o_cols(cfg, h).start
        W[v:v + (_value_rows(cfg)[h] if _free_values(cfg) else hd)] = 0.0   # free rows keep init
        Wo[:, o_cols(cfg, h)] = 0.0
        row = 0
        for proj, dims in writes[h]:                    # value rows read content, o writes a space
            W[v + row:v + row + len(proj), content] = proj
            Wo[dims, o + row:o + row + len(proj)] = write * torch.eye(len(proj))
            row += len(proj)
    model.layers[0].mlp.down_proj.weight[first:const] = 0.0

    # --- layer 1, heads 0 and 1: find where the current token (head 1 with match=2: the last
    #     two tokens) occurred before, copy what followed
    ctx = cfg.max_seq_len
    slow = [i for i in range(half) if float(theta[i]) * ctx < _SLOW_ANGLE]
    if len(slow) < _MIN_SLOW_PAIRS:
        raise UserError(f"only {len(slow)} RoPE pairs turn slowly enough over {ctx} positions to "
                        f"match content; wire with rope_theta={ROPE_THETA:.0f}")
    ch = torch.tensor(slow + [i + half for i in slow])  # the slow channels, both halves of each pair
    W, Wo = attention_weights(model, 1)
    Rv = _orthonormal_rows(min(2 * hd, nC), nC, g)      # the two heads' values cover the content
    x1 = math.sqrt(D / (1 + len(spaces) * _RESERVED_SHARE ** 2))  # |content| after layer 1's norm
    # Two heads copy 2*head_dim of the nC content dims (all of them at depth 3; 128 of 447 at
    # depth 8): a copied token's logit is then its share k/nC of the embedding's energy, and must
    # still beat the current token's own (its embedding is in the stream too) -- hence nC/k.
    copy_out = _COPY_SHARE * e_norm / x1 * (nC / len(Rv))
    # the dims of (current, previous) each head compares: token m against token n-1 -- with
    # match=2 head 0 on the a halves only, head 1 on the whole spaces (and token m-1 against n-2)
    matches = [(cur, prev), (cur, prev)] if match == 1 else [(cur[a], prev[a]), (cur, prev)]
    for h in range(2):
        q, k, v = (qkv_rows(cfg, part, h).start for part in "qkv")
        for part in "qkv":
            W[qkv_rows(cfg, part, h)] = 0.0
        qdims, kdims = matches[h]
        n = len(qdims)
        gain = _MATCH_GAIN * math.sqrt(S / n)            # a full match scores the same either way
        A = _orthonormal_rows(len(ch), n, g) if len(ch) <= n else _orthonormal_rows(n, len(ch), g).T
        W[q + ch[:, None], qdims[None]] = gain * A                   # this token...
        W[k + ch[:, None], kdims[None]] = gain * A                   # ...against each one's previous
        rv = Rv[h * hd:(h + 1) * hd]                                 # (<= hd, nC)
        W[v:v + len(rv), content] = rv                               # what followed, read out
        Wo[:, o_cols(cfg, h)] = 0.0
        o = o_cols(cfg, h).start
        Wo[content[:, None], torch.arange(o, o + len(rv))[None]] = copy_out * rv.T
    if model.lm_head.weight is not E:                   # untied: the head starts as a copy of the
        model.lm_head.weight.copy_(E)                   # embeddings, so copied content reads out

    # --- the other heads and the MLPs of layers 0 and 1 write random noise into the stream the
    #     copy is read from. GPT-2's init makes that noise grow with width relative to the
    #     embeddings: harmless and worth keeping at depth 3, drowning the copy at depth 8 (the
    #     numbers: docs/lab). So where the copy does not come through, those parts start silent
    #     (zero, as nanochat's residual projections do) and learn from there.
    copied = copy_accuracy(model, cfg.vocab_size)
    silenced = copied < _MIN_COPY
    if silenced:
        for i, layer in enumerate(model.layers[:2]):
            first_free = len(_offsets(cfg)) if i == 0 else 2
            attention_weights(model, i)[1][:, o_cols(cfg, first_free).start:] = 0.0
            layer.mlp.down_proj.weight.zero_()
        copied = copy_accuracy(model, cfg.vocab_size)
    return {"slow_pairs": len(slow), "silenced": silenced, "copy_acc": copied}


@torch.no_grad()
def set_constant(E: torch.Tensor, cfg) -> None:
    """Each embedding's constant dim holds _CONST_SHARE of its energy: after RMSNorm it is then
    exactly sqrt(_CONST_SHARE * D) for every token, however the content grows in training."""
    content, _, const = _layout(cfg)
    E[:, const] = math.sqrt(_CONST_SHARE / (1 - _CONST_SHARE)) * E[:, content].norm(dim=1)


def wired_entries(model) -> dict[str, torch.Tensor]:
    """{parameter name: bool mask} of every weight the circuit fixes, for a wired model. The
    induction heads' values and outputs are not fixed: training decides what to copy, how much."""
    cfg = model.config
    hd = cfg.head_dim
    _, spaces, const = _layout(cfg)
    names = {id(p): name for name, p in model.named_parameters()}   # a tied head: embed_tokens
    masks: dict[str, torch.Tensor] = {}

    def mask(p: torch.Tensor) -> torch.Tensor:
        return masks.setdefault(names[id(p)], torch.zeros_like(p, dtype=torch.bool))

    reserved = slice(int(spaces[0][0]), const)          # the position heads' spaces
    mask(model.embed_tokens.weight)[:, reserved] = True  # (the constant: set_constant)
    mask(model.layers[0].input_layernorm.weight)[reserved.start:] = True
    mask(model.layers[1].input_layernorm.weight)[reserved] = True
    W0, Wo0 = (mask(w) for w in attention_weights(model, 0))
    for h, used in enumerate(_value_rows(cfg)):         # layer 0's position heads: q, k, v, o
        rows = used if _free_values(cfg) else hd
        W0[qkv_rows(cfg, "q", h)] = W0[qkv_rows(cfg, "k", h)] = True
        v, o = qkv_rows(cfg, "v", h).start, o_cols(cfg, h).start
        W0[v:v + rows] = True
        Wo0[:, o:o + rows] = True
    W1 = mask(attention_weights(model, 1)[0])
    for h in (0, 1):                                    # layer 1's induction heads: q and k
        W1[qkv_rows(cfg, "q", h)] = W1[qkv_rows(cfg, "k", h)] = True
    Wo0[reserved] = True                                # nothing else writes the reserved
    mask(model.layers[0].mlp.down_proj.weight)[reserved] = True    # dims in layer 0
    return {name: m for name, m in masks.items() if m.any()}


class Pins:
    """Holds a wired model's circuit fixed: restore() puts the pinned entries back to the
    values they had when Pins was made (call it after each optimizer step). A no-op for a
    model that was not wired."""

    def __init__(self, model) -> None:
        self.pinned: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]] = []
        self.embed = None
        if not model.config.extra.get("wired_induction"):
            return
        self.embed, self.cfg = model.embed_tokens.weight, model.config
        params = dict(model.named_parameters())
        for name, mask in wired_entries(model).items():
            p = params[name]
            mask = mask.to(p.device)
            self.pinned.append((p, mask, p.detach().clone()))

    def __bool__(self) -> bool:
        return bool(self.pinned)

    @torch.no_grad()
    def restore(self) -> None:
        for p, mask, ref in self.pinned:
            torch.where(mask, ref, p, out=p)
        if self.embed is not None:
            set_constant(self.embed, self.cfg)
