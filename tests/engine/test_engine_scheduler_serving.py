"""What a server needs from the continuous-batching Scheduler: chunked prefill (a long prompt
joins between decode steps and still gets the tokens it gets alone), a non-blocking drain with
a wake-up callback (for an asyncio server), and the gauges its metrics read."""

import threading

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from groundup.engine import Engine, SamplingParams, Scheduler
from groundup.model import load_model

V = 256


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=160,
                      num_hidden_layers=2, vocab_size=V, max_position_embeddings=256, initializer_range=0.2)
    d = tmp_path_factory.mktemp("llama")
    LlamaForCausalLM(cfg).eval().save_pretrained(d)
    return Engine(load_model(d))


def _prompt(n, seed):
    return torch.randint(0, V, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_chunked_prefill_gives_the_tokens_of_a_whole_prefill_while_others_decode(engine):
    short = [_prompt(5, s) for s in range(3)]
    long = [_prompt(100, 10), _prompt(37, 11)]            # 13 and 5 chunks of 8
    params = SamplingParams(max_new_tokens=20)
    alone = {tuple(p): engine.generate(p, params).token_ids for p in short + long}
    with Scheduler(engine, max_batch=4, prefill_chunk=8) as sched:
        handles = [sched.submit(p, params) for p in short]
        next(iter(handles[0]))                             # the short ones are decoding...
        handles += [sched.submit(p, params) for p in long]  # ...when the long ones arrive
        steps_before = sched.steps
        results = [h.result(timeout=60) for h in handles]
        assert sched.steps > steps_before
        assert sched.num_running == 0 and sched.kv_tokens == 0
    assert [r.token_ids for r in results] == [alone[tuple(p)] for p in short + long]


def test_chunked_prefill_interleaves_with_decode_steps(engine):
    """While a 160-token prompt is prefilled in chunks of 16, the running stream keeps getting
    tokens: its events arrive between the long prompt's submission and its first token."""
    with Scheduler(engine, max_batch=2, prefill_chunk=16) as sched:
        runner = sched.submit(_prompt(4, 1), SamplingParams(max_new_tokens=200))
        it = iter(runner)
        next(it)
        long = sched.submit(_prompt(160, 2), SamplingParams(max_new_tokens=1))
        got_during = 0
        while not long.done:
            next(it)
            got_during += 1
        runner.cancel()
    assert got_during >= 9        # 160 / 16 = 10 chunks, a decode step after each (but the last)


def test_drain_and_on_ready_let_a_caller_wait_without_a_thread(engine):
    ready = threading.Event()
    with Scheduler(engine, max_batch=2) as sched:
        h = sched.submit(_prompt(6, 3), SamplingParams(max_new_tokens=12), on_ready=ready.set)
        got = []
        while True:
            assert ready.wait(timeout=60)
            ready.clear()
            got += h.drain()
            if h.done:
                got += h.drain()      # whatever arrived between the two
                break
    assert [e.token_id for e in got] == engine.generate(_prompt(6, 3), SamplingParams(max_new_tokens=12)).token_ids
    assert got[-1].finish_reason == "length"


def test_a_cancelled_prompt_that_is_still_being_prefilled_frees_its_slot(engine):
    with Scheduler(engine, max_batch=1, prefill_chunk=4) as sched:
        h = sched.submit(_prompt(200, 4), SamplingParams(max_new_tokens=5))
        h.cancel()
        assert h.result(timeout=60).finish_reason == "cancelled"
        r = sched.submit(_prompt(5, 5), SamplingParams(max_new_tokens=3)).result(timeout=60)
    assert len(r.token_ids) == 3


def test_prefix_cache_prefills_each_conversation_only_where_it_is_new(engine):
    """Two agent conversations through one batch: every turn's prompt is the last prompt, its
    answer and something new. With the prefix cache each prompt prefills only the new part,
    and the tokens are those of an engine without any cache."""
    params = SamplingParams(max_new_tokens=6)
    convos = [_prompt(30, 40), _prompt(25, 41)]
    assert convos[0][0] != convos[1][0]
    expected = 0
    with Scheduler(engine, max_batch=2, prefix_cache=True) as sched:
        for turn in range(3):
            handles = [sched.submit(c, params) for c in convos]          # both in flight at once
            got = [h.result().token_ids for h in handles]
            assert got == [engine.generate(c, params).token_ids for c in convos]
            assert sched.reused_tokens == expected
            expected += sum(len(c) + len(g) - 1 for c, g in zip(convos, got))  # the last token: never fed
            convos = [c + g + _prompt(7, 50 + 2 * turn + i) for i, (c, g) in enumerate(zip(convos, got))]
        # a new conversation that shares only a first part with one of them reuses that part
        before = sched.reused_tokens
        fresh = convos[0][:12] + _prompt(9, 60)
        assert sched.submit(fresh, params).result().token_ids == engine.generate(fresh, params).token_ids
        assert sched.reused_tokens - before == 12
