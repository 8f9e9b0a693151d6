"""The update on hand-made groups: advantages, the loss's gradient, and what one step does."""

import copy

import pytest
import torch

from groundup.model import ModelConfig, Transformer
from groundup.rl.grpo import group_advantages, grpo_backward, token_logprobs

torch.set_num_threads(1)
PROMPT = [1, 5, 9, 14, 3, 7]
GOOD, BAD = [20, 21, 22, 2], [30, 31, 32, 2]       # two answers to the same prompt


def tiny_model(seed=0):
    torch.manual_seed(seed)
    m = Transformer(ModelConfig.from_depth(1, vocab_size=48, max_seq_len=64))
    m.init_weights()
    return m


def row(answer):
    return PROMPT + answer, [0] * len(PROMPT) + [1] * len(answer)


def answer_logprob(model, answer):
    ids, mask = row(answer)
    with torch.no_grad():
        return float(token_logprobs(model, torch.tensor(ids), torch.tensor(mask))[0].sum())


def test_advantages_are_relative_to_the_group():
    assert group_advantages([1.0, 0.0, 0.0, 1.0]) == [0.5, -0.5, -0.5, 0.5]
    assert group_advantages([0.0] * 4) == [0.0] * 4 and group_advantages([1.0] * 4) == [0.0] * 4
    a = group_advantages([1.0, 0.0, 0.0, 0.0], std_norm=True)      # std = sqrt(3)/4
    assert a[0] == pytest.approx(0.75 / (3 ** 0.5 / 4), rel=1e-5) and sum(a) == pytest.approx(0, abs=1e-6)


def test_token_logprobs_score_exactly_the_masked_tokens():
    m = tiny_model()
    ids, mask = row(GOOD)
    logp, ent = token_logprobs(m, torch.tensor(ids), torch.tensor(mask), temperature=2.0)
    with torch.no_grad():
        logits = m(torch.tensor([ids]))[0].float() / 2.0                    # (T, V)
    want = torch.log_softmax(logits, -1)[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    sel = torch.tensor(mask[1:]).bool()
    assert logp.shape == (len(GOOD),)
    torch.testing.assert_close(logp, want[sel], rtol=1e-5, atol=1e-5)
    assert bool((ent > 0).all())


@pytest.mark.parametrize("kl_coef", [0.0, 0.1])
def test_a_group_with_equal_rewards_gives_exactly_zero_gradient(kl_coef):
    """All attempts failed (or all solved): every advantage is 0; at the first step the policy is
    the reference, so the KL term's gradient is 0 too."""
    m = tiny_model()
    ref = copy.deepcopy(m).requires_grad_(False)
    advs = group_advantages([0.0, 0.0])
    stats = grpo_backward(m, ref, [(*row(GOOD), advs[0]), (*row(BAD), advs[1])], 1.0, kl_coef)
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert all(float(g.abs().max()) == 0.0 for g in grads)
    assert stats["tokens"] == 2 * len(GOOD) and stats["kl"] == 0.0


def test_a_step_pushes_the_rewarded_attempt_up_and_the_other_down():
    m = tiny_model()
    ref = copy.deepcopy(m).requires_grad_(False)
    before = answer_logprob(m, GOOD), answer_logprob(m, BAD)
    advs = group_advantages([1.0, 0.0])                                       # +0.5, -0.5
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    stats = grpo_backward(m, ref, [(*row(GOOD), advs[0]), (*row(BAD), advs[1])], 1.0, kl_coef=0.02)
    assert stats["pg"] == pytest.approx(-(0.5 * before[0] - 0.5 * before[1]) / 8, rel=1e-4)
    opt.step()
    after = answer_logprob(m, GOOD), answer_logprob(m, BAD)
    assert after[0] > before[0] + 0.05 and after[1] < before[1] - 0.05
    # and the KL to the reference is now measured above zero
    opt.zero_grad()
    assert grpo_backward(m, ref, [(*row(GOOD), 0.0)], 1.0, 0.02)["kl"] > 0


def test_the_kl_term_pulls_towards_the_reference():
    """With no reward signal at all, steps on the KL term alone bring a drifted policy back."""
    ref = tiny_model(0).requires_grad_(False)
    m = tiny_model(1)                                                          # another model
    opt = torch.optim.SGD(m.parameters(), lr=0.02)
    kls = []
    for _ in range(5):
        opt.zero_grad()
        kls.append(grpo_backward(m, ref, [(*row(GOOD), 0.0), (*row(BAD), 0.0)], 1.0, kl_coef=1.0)["kl"])
        opt.step()
    assert kls[-1] < kls[0] / 2 and kls == sorted(kls, reverse=True)
