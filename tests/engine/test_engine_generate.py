"""The engine's generation paths agree with each other and with transformers:
KV cache == recompute, batch == alone, continuous batching (staggered) == alone, sampling
filters == HF's logits processors, repetition penalty == HF generate."""

import tempfile
import threading
import time

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.generation.logits_process import (MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
                                                    TemperatureLogitsWarper, TopKLogitsWarper,
                                                    TopPLogitsWarper)

from groundup.engine import Engine, SamplingParams, Scheduler
from groundup.engine.sampling import Sampler
from groundup.errors import UserError
from groundup.model import load_model

V = 256


@pytest.fixture(scope="module")
def hf_and_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=160,
                      num_hidden_layers=2, vocab_size=V, max_position_embeddings=128, initializer_range=0.2)
    hf = LlamaForCausalLM(cfg).eval()
    d = tmp_path_factory.mktemp("llama")
    hf.save_pretrained(d)
    return hf, d


@pytest.fixture(scope="module")
def engine(hf_and_dir):
    return Engine(load_model(hf_and_dir[1]))


def _prompts(seed=1, lengths=(4, 19, 9, 30, 1)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, V, (n,), generator=g).tolist() for n in lengths]


def test_kv_cache_equals_recompute(engine):
    prompt = _prompts()[1]
    got = engine.generate(prompt, SamplingParams(max_new_tokens=24)).token_ids
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(24):       # no cache: the whole sequence through the model every step
            seq.append(int(engine.model(torch.tensor([seq]))[0, -1].argmax()))
    assert got == seq[len(prompt):]


def test_prefix_cache_prefills_only_what_is_new_and_gives_the_same_tokens(hf_and_dir, engine):
    """A conversation: each prompt is the last prompt + its answer + new tokens. The cached
    engine prefills only the new part (its cache row also grows, carrying the prefix over) and
    generates what an engine without the cache generates."""
    cached = Engine(load_model(hf_and_dir[1]), prefix_cache=True)
    news = _prompts(seed=7, lengths=(20, 6, 9, 5))
    params = SamplingParams(max_new_tokens=8)
    convo, expected = list(news[0]), 0
    for turn, new in enumerate(news[1:]):
        got = cached.generate(convo, params).token_ids
        assert got == engine.generate(convo, params).token_ids
        assert cached.reused_tokens == expected
        expected += len(convo) + len(got) - 1     # the last sampled token was never fed
        convo += got + new
    # a caller that stops reading early leaves a whole cache: the fed tokens are reused
    stream = cached.stream(convo, params)
    first = [next(stream).token_id for _ in range(3)]
    stream.close()
    before = cached.reused_tokens
    again = cached.generate(convo + first, params).token_ids
    assert cached.reused_tokens - before == len(convo) + 2
    assert again == engine.generate(convo + first, params).token_ids
    # a prompt that leaves the conversation early reuses only the common part
    other = convo[:5] + news[2]
    before = cached.reused_tokens
    assert cached.generate(other, params).token_ids == engine.generate(other, params).token_ids
    assert cached.reused_tokens - before == 5


def test_batch_equals_alone_rows_finish_independently(engine):
    prompts = _prompts()
    params = [SamplingParams(max_new_tokens=n) for n in (20, 7, 20, 13, 20)]
    alone = [engine.generate(p, sp) for p, sp in zip(prompts, params)]
    # a stop id that row 2 will meet: that row finishes early, the others carry on
    stop_tok = alone[2].token_ids[5]
    params[2] = SamplingParams(max_new_tokens=20, stop_ids=(stop_tok,))
    batch = engine.generate_batch(prompts, params)
    for i, (a, b) in enumerate(zip(alone, batch)):
        if i == 2:
            k = a.token_ids.index(stop_tok)
            assert b.token_ids == a.token_ids[:k + 1] and b.finish_reason == "stop"
        else:
            assert b.token_ids == a.token_ids and b.finish_reason == "length"
            assert len(b.token_ids) == params[i].max_new_tokens
    # fewer slots than prompts: waiting prompts join as slots free up
    again = engine.generate_batch(prompts, params, max_batch=2)
    assert [r.token_ids for r in again] == [r.token_ids for r in batch]


def test_seeded_sampling_is_batch_invariant(engine):
    prompts = _prompts(seed=2)
    params = [SamplingParams(max_new_tokens=12, temperature=0.9, top_k=40, top_p=0.95, min_p=0.02,
                             repetition_penalty=1.1, seed=s) for s in range(len(prompts))]
    alone = [engine.generate(p, sp).token_ids for p, sp in zip(prompts, params)]
    batch = [r.token_ids for r in engine.generate_batch(prompts, params)]
    assert batch == alone
    other_seed = engine.generate(prompts[0], SamplingParams(max_new_tokens=12, temperature=0.9, seed=99)).token_ids
    assert other_seed != alone[0]       # the seed matters (a 1-in-V^12 coincidence otherwise)


def test_continuous_batching_staggered_equals_alone(engine):
    prompts = _prompts(seed=3, lengths=(5, 12, 3, 25, 8, 16, 2))
    params = [SamplingParams(max_new_tokens=n) for n in (30, 6, 18, 12, 30, 3, 22)]
    alone = [engine.generate(p, sp).token_ids for p, sp in zip(prompts, params)]
    with Scheduler(engine, max_batch=3) as sched:
        handles = []
        for i, (p, sp) in enumerate(zip(prompts, params)):
            handles.append(sched.submit(p, sp))
            time.sleep(0.005 * (i % 3))             # arrivals between decode steps
        streamed = [[ev.token_id for ev in h] for h in handles]
        results = [h.result(timeout=60) for h in handles]
    assert [r.token_ids for r in results] == alone
    assert streamed == alone
    assert all(r.finish_reason == "length" for r in results)


def test_scheduler_thread_safe_submit_and_cancel(engine):
    prompts = _prompts(seed=4, lengths=(6, 6, 6, 6, 6, 6))
    alone = engine.generate(prompts[0], SamplingParams(max_new_tokens=10)).token_ids
    out: dict[int, list[int]] = {}
    with Scheduler(engine, max_batch=4) as sched:
        def worker(i):
            out[i] = sched.submit(prompts[0], SamplingParams(max_new_tokens=10)).result(timeout=60).token_ids
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        h = sched.submit(prompts[1], SamplingParams(max_new_tokens=100))
        next(iter(h))
        h.cancel()
        r = h.result(timeout=60)
    assert all(v == alone for v in out.values()) and len(out) == 6
    assert r.finish_reason == "cancelled" and len(r.token_ids) < 100


def test_sampling_filters_match_hf_processors():
    torch.manual_seed(5)
    logits = torch.randn(V) * 3
    seen_ids = [3, 7, 7, 100]
    cases = [dict(temperature=0.7), dict(temperature=1.0, top_k=10), dict(temperature=1.3, top_p=0.8),
             dict(temperature=0.9, min_p=0.1), dict(temperature=1.0, repetition_penalty=1.5, top_k=50, top_p=0.9)]
    for kw in cases:
        params = SamplingParams(**kw)
        ours = Sampler(params, V, torch.device("cpu"), seen_ids).warp(logits)
        scores = logits[None].clone()
        ids = torch.tensor([seen_ids])
        procs = []
        if params.repetition_penalty != 1.0:
            procs.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        procs.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            procs.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            procs.append(TopPLogitsWarper(params.top_p))
        if params.min_p:
            procs.append(MinPLogitsWarper(params.min_p))
        for proc in procs:
            scores = proc(ids, scores)
        assert torch.equal(torch.isinf(ours), torch.isinf(scores[0])), kw
        finite = ~torch.isinf(ours)
        assert torch.allclose(ours[finite], scores[0][finite], atol=1e-6), kw


def test_repetition_penalty_greedy_matches_hf_generate(hf_and_dir, engine):
    hf, _ = hf_and_dir
    prompt = _prompts(seed=6)[3]
    ref = hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=20, min_new_tokens=20,
                      repetition_penalty=1.3, eos_token_id=None, pad_token_id=0,
                      attention_mask=torch.ones(1, len(prompt), dtype=torch.long))[0, len(prompt):].tolist()
    got = engine.generate(prompt, SamplingParams(max_new_tokens=20, repetition_penalty=1.3)).token_ids
    assert got == ref


def test_degenerate_sampling_is_greedy(engine):
    prompt = _prompts()[0]
    greedy = engine.generate(prompt, SamplingParams(max_new_tokens=10)).token_ids
    for kw in (dict(top_k=1), dict(min_p=1.0), dict(top_p=1e-6)):
        assert engine.generate(prompt, SamplingParams(max_new_tokens=10, temperature=1.0, seed=0, **kw)).token_ids == greedy


def test_eos_and_context_limit(engine):
    prompt = _prompts()[2]
    free = engine.generate(prompt, SamplingParams(max_new_tokens=10)).token_ids
    with_eos = Engine(engine.model, eos_ids=(free[3],)).generate(prompt, SamplingParams(max_new_tokens=10))
    k = free.index(free[3])
    assert with_eos.token_ids == free[:k + 1] and with_eos.finish_reason == "stop"
    # the context is 128: a 120-token prompt can grow by 8 tokens at most
    long = (prompt * 20)[:120]
    r = engine.generate(long, SamplingParams(max_new_tokens=50))
    assert len(r.token_ids) == 8 and r.finish_reason == "length"
    events = list(engine.stream(prompt, SamplingParams(max_new_tokens=5)))
    assert [e.finish_reason for e in events] == [None] * 4 + ["length"]


def test_bad_input(engine):
    with pytest.raises(UserError, match="empty"):
        engine.generate([], SamplingParams())
    with pytest.raises(UserError, match="outside the model's vocabulary"):
        engine.generate([1, V + 5], SamplingParams())
    with pytest.raises(UserError, match="context is 128"):
        engine.generate([1] * 200, SamplingParams())
    with pytest.raises(UserError, match="top_p"):
        SamplingParams(top_p=0.0)
    with pytest.raises(UserError, match="stop strings need a tokenizer"):
        engine.generate([1, 2], SamplingParams(stop_strings=("x",)))


def test_scheduler_delivers_a_failure_and_then_refuses_work(engine):
    class BrokenTokenizer:
        def __init__(self, fail_from):
            self.calls, self.fail_from = 0, fail_from

        def decode_bytes(self, ids):
            self.calls += 1
            if self.calls >= self.fail_from:
                raise ValueError("cannot decode")
            return b"x"

    # failing during a request's prefill fails that request only
    sched = Scheduler(Engine(engine.model, tokenizer=BrokenTokenizer(1)), max_batch=2)
    with pytest.raises(ValueError, match="cannot decode"):
        sched.submit([1, 2, 3], SamplingParams(max_new_tokens=5)).result(timeout=60)
    sched.close()
    # failing inside a decode step ends the loop: every caller hears it, later submits are refused
    sched = Scheduler(Engine(engine.model, tokenizer=BrokenTokenizer(2)), max_batch=2)
    h = sched.submit([1, 2, 3], SamplingParams(max_new_tokens=5))
    with pytest.raises(ValueError, match="cannot decode"):
        h.result(timeout=60)
    with pytest.raises(ValueError, match="cannot decode"):
        list(h)
    with pytest.raises(RuntimeError, match="closed"):
        sched.submit([1, 2, 3], SamplingParams(max_new_tokens=5))
    sched.close()


def test_compiled_engine_gives_the_same_tokens():
    """Engine(compile=True) runs the same model through torch.compile: same greedy tokens for a
    single prompt (the batch-1 decode graph) and for a batch (the masked ragged-decode graph).
    warm_up() builds all three graphs up front, and nothing recompiles after it as prompts
    change length, batches change size and positions pass the first RoPE table. The model is
    sized so that the warm-up cache's second layer starts at storage offset 2048, the RoPE
    table's length: dynamo's duck sizing took that equality for a rule, and every real request
    recompiled (the 10M bench model's shapes did this with a 16-position warm-up cache)."""
    import dataclasses
    from torch._dynamo.utils import counters
    from groundup.model import ModelConfig, Transformer
    torch.manual_seed(0)
    cfg = ModelConfig.from_depth(1, V, max_seq_len=2048)
    cfg = dataclasses.replace(cfg, n_layers=2)
    assert 2 * cfg.n_kv_heads * 16 * cfg.head_dim == cfg.max_seq_len   # a warm-up cache of 2 rows x 16 collided
    model = Transformer(cfg)
    model.init_weights()
    eager = Engine(model)
    counters.clear()
    if any(c.isspace() or c in "'\"" for c in tempfile.gettempdir()):
        # torch's C++ build cannot work there; we refuse in one line instead of failing inside it
        with pytest.raises(UserError, match="TMPDIR"):
            Engine(model, compile=True)
        pytest.skip(f"torch.compile cannot build under TMPDIR={tempfile.gettempdir()!r} (refused with a clear error)")
    compiled = Engine(model, compile=True)
    compiled.warm_up(batched=True)
    # prefill (any length), one-row decode (any position), several-row decode (any batch size)
    assert counters["stats"]["unique_graphs"] == 3
    prompts = _prompts(seed=5, lengths=(7, 12, 3))
    for p, n in zip(prompts[:2], (12, 300)):   # another prompt length, and positions past 256
        assert compiled.generate(p, SamplingParams(max_new_tokens=n)).token_ids == \
            eager.generate(p, SamplingParams(max_new_tokens=n)).token_ids
    got = compiled.generate_batch(prompts, SamplingParams(max_new_tokens=8))
    want = eager.generate_batch(prompts, SamplingParams(max_new_tokens=8))
    assert [r.token_ids for r in got] == [r.token_ids for r in want]
    assert counters["stats"]["unique_graphs"] == 3


def test_on_cpu_the_engine_stores_wide_weights_column_major(hf_and_dir):
    """cpu_decode_layout: same values, transposed strides for weights with more outputs than
    inputs (the decode matvec streams them faster); the others stay row-major."""
    plain = load_model(hf_and_dir[1])
    model = Engine(load_model(hf_and_dir[1])).model
    for (name, m), (_, ref) in zip(model.named_modules(), plain.named_modules()):
        if isinstance(m, torch.nn.Linear):
            assert torch.equal(m.weight, ref.weight), name
            wide = m.out_features > m.in_features
            assert m.weight.t().is_contiguous() == wide and m.weight.is_contiguous() != wide, name


@pytest.mark.parametrize("kernel", ["timed", "packed", "plain"])
def test_on_cpu_the_engine_lays_out_linears_for_multi_row_products(hf_and_dir, monkeypatch, kernel):
    """cpu_pack_linears: every float32 Linear keeps a copy of its weight laid out for products
    of several rows (batched decode, prefill) -- oneDNN's packed layout or a column-major matrix,
    whichever was timed faster for its shape (here also each one forced); the parameters and
    state_dict are untouched, several rows give the plain product's values, and batched
    generation gives the same tokens as an engine without either."""
    from groundup.engine.cpu_linear import PackedLinear, multi_row_kernels
    monkeypatch.setattr(PackedLinear, "kernels", {})
    if kernel != "timed":
        monkeypatch.setattr(PackedLinear, "choose_kernel", lambda self, packed, col: kernel)
    plain = Engine(load_model(hf_and_dir[1]), pack=False)
    packed = Engine(load_model(hf_and_dir[1]))
    linears = [m for m in packed.model.modules() if isinstance(m, torch.nn.Linear)]
    if not all(isinstance(m, PackedLinear) for m in linears):
        pytest.skip("this torch has no oneDNN linear ops")
    assert not any(isinstance(m, PackedLinear) for m in plain.model.modules())
    counts = multi_row_kernels(packed.model)
    assert sum(counts.values()) == len(linears) and (kernel == "timed" or counts == {kernel: len(linears)})
    assert {m.kernel for m in linears} <= {"packed", "plain"}
    shapes = {(*m.weight.shape, m.bias is not None) for m in linears}
    assert set(PackedLinear.kernels) == shapes                # timed once per shape, not per layer
    a, b = plain.model.state_dict(), packed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(0)
    for m in linears:
        for shape in ((3, 5, m.in_features), (1, 1, m.in_features)):   # several rows; one row
            x = torch.randn(shape)
            torch.testing.assert_close(m(x), torch.nn.functional.linear(x, m.weight, m.bias),
                                       atol=1e-5, rtol=1e-5)
    # a Linear with a bias packs too; a weight changed in place is packed again before use;
    # with gradients on, the plain product runs (the oneDNN op has no backward)
    from groundup.engine.cpu_linear import cpu_pack_linears
    lin = torch.nn.Sequential(torch.nn.Linear(8, 24))
    cpu_pack_linears(lin)
    x = torch.randn(4, 8)
    with torch.inference_mode():
        torch.testing.assert_close(lin(x), torch.nn.functional.linear(x, lin[0].weight, lin[0].bias))
    with torch.no_grad():
        lin[0].weight.mul_(-2.0)
    with torch.inference_mode():
        torch.testing.assert_close(lin(x), torch.nn.functional.linear(x, lin[0].weight, lin[0].bias))
    lin(x).sum().backward()
    assert lin[0].weight.grad is not None and lin[0].bias.grad is not None
    prompts = _prompts(seed=7)
    want = plain.generate_batch(prompts, SamplingParams(max_new_tokens=12))
    got = packed.generate_batch(prompts, SamplingParams(max_new_tokens=12))
    assert [r.token_ids for r in got] == [r.token_ids for r in want]


@pytest.mark.parametrize("timed", ["packed", "plain"])
def test_one_row_through_a_big_weight_takes_the_kernel_timed_faster(hf_and_dir, monkeypatch, timed):
    """Batch-1 decode multiplies one row by each weight: a weight too big for the cache
    (ONE_ROW_MIN elements) streamed faster packed on an AVX2 EPYC, plain on an AVX-512 Xeon, so
    the engine times both per shape when it loads (choose_one_row_kernels) -- here every weight
    counts as big and the timing says `timed`. Both give the plain product, and one sequence
    decodes the same tokens."""
    from groundup.engine import cpu_linear
    from groundup.engine.cpu_linear import PackedLinear, one_row_kernels
    monkeypatch.setattr(PackedLinear, "ONE_ROW_MIN", 0)
    monkeypatch.setattr(PackedLinear, "one_row_kernels", {})
    timings = []
    monkeypatch.setattr(cpu_linear, "_time_one_row", lambda group: timings.append(len(group)) or timed)
    big = torch.nn.Sequential(torch.nn.Linear(1024, 512))
    from groundup.engine.cpu_linear import cpu_pack_linears
    cpu_pack_linears(big)
    if not isinstance(big[0], PackedLinear):
        pytest.skip("this torch has no oneDNN linear ops")
    x = torch.randn(1, 1024)
    calls = []
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise",
                        lambda x, *a, _f=torch.ops.mkldnn._linear_pointwise: calls.append(len(x)) or _f(x, *a))
    with torch.inference_mode():
        torch.testing.assert_close(big(x), torch.nn.functional.linear(x, big[0].weight, big[0].bias),
                                   atol=1e-4, rtol=1e-5)
    assert calls == ([1] if timed == "packed" else [])          # the one row took the kernel timed faster
    assert timings == [1]
    monkeypatch.undo()
    monkeypatch.setattr(PackedLinear, "ONE_ROW_MIN", 0)
    monkeypatch.setattr(PackedLinear, "one_row_kernels", {})
    monkeypatch.setattr(cpu_linear, "_time_one_row", lambda group: timings.append(len(group)) or timed)
    plain = Engine(load_model(hf_and_dir[1]), pack=False)
    packed = Engine(load_model(hf_and_dir[1]))
    # timed once per shape, over all the weights of that shape (the model's two layers: two each)
    shapes = {(*m.weight.shape, m.bias is not None) for m in packed.model.modules() if isinstance(m, PackedLinear)}
    assert len(timings) == 1 + len(shapes) and set(PackedLinear.one_row_kernels) >= shapes
    assert one_row_kernels(packed.model) == {timed: 2 * 4 + 1}
    rows = []                                                   # rows of each packed product
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise",
                        lambda x, *a, _f=torch.ops.mkldnn._linear_pointwise: rows.append(len(x)) or _f(x, *a))
    prompt = _prompts(seed=3)[0]
    want = plain.generate(prompt, SamplingParams(max_new_tokens=16)).token_ids
    assert packed.generate(prompt, SamplingParams(max_new_tokens=16)).token_ids == want
    assert (1 in rows) == (timed == "packed")                   # decode steps ran it on one row, or not


@pytest.mark.parametrize("manual", [True, False])
def test_batched_decode_attention_on_cpu_matches_sdpa(monkeypatch, manual):
    """The ragged decode step computes attention by hand on an AVX2 CPU (faster there than
    SDPA's kernel for several single-query rows), through SDPA elsewhere: both give SDPA's output
    on the full tensors, with an additive or a boolean mask."""
    from groundup.model import ModelConfig, Transformer
    from groundup.model.llama import Attention
    monkeypatch.setattr(Attention, "MANUAL_RAGGED_CPU", manual)
    torch.manual_seed(0)
    attn = Transformer(ModelConfig.from_depth(1, V, max_seq_len=64)).layers[0].self_attn
    B, L = 4, 9
    q = torch.randn(B, attn.n_heads, 1, attn.head_dim)
    k, v = (torch.randn(B, attn.n_kv_heads, L, attn.head_dim) for _ in range(2))
    pos = torch.tensor([8, 2, 5, 0])
    allowed = (torch.arange(L)[None, :] <= pos[:, None]).view(B, 1, 1, L)
    additive = torch.zeros(B, 1, 1, L).masked_fill_(~allowed, float("-inf"))
    qg = q.reshape(B, attn.n_kv_heads, attn.group, attn.head_dim)
    want = torch.nn.functional.scaled_dot_product_attention(qg, k, v, attn_mask=allowed)
    want = want.reshape(B, attn.n_heads, 1, attn.head_dim)
    for mask in (allowed, additive):
        torch.testing.assert_close(attn._decode_attend(q, k, v, mask), want, atol=1e-5, rtol=1e-5)
