import math

import pytest
import torch

from rl_post.algorithms.logprob import aggregate_logprob
from rl_post.algorithms.losses import entropy_loss, kl_penalty, ppo_policy_loss, value_loss
from rl_post.algorithms.masked import masked_mean
from rl_post.config import ConfigError

LOW, HIGH = 0.2, 0.28  # ratio kept in [0.8, 1.28]


def log(*ratios):
    return torch.log(torch.tensor(ratios, dtype=torch.float64))


def test_ppo_clipped_surrogate_by_hand():
    ratio_log = log(1.5, 0.5, 1.1, 0.7)
    adv = torch.tensor([1.0, -1.0, -2.0, 2.0], dtype=torch.float64)
    old = torch.zeros(4, dtype=torch.float64)
    # per decision max(-A r, -A clip(r)):
    #   r=1.5,A=1: max(-1.5, -1.28) = -1.28    r=0.5,A=-1: max(0.5, 0.8) = 0.8
    #   r=1.1,A=-2: max(2.2, 2.2) = 2.2        r=0.7,A=2: max(-1.4, -1.6) = -1.4
    ones = torch.ones(4, dtype=torch.float64)
    loss = ppo_policy_loss(ratio_log, old, adv, ones, LOW, HIGH)
    torch.testing.assert_close(loss, torch.tensor(0.32 / 4, dtype=torch.float64))
    masked = ppo_policy_loss(ratio_log, old, adv, torch.tensor([1.0, 1, 1, 0]).double(), LOW, HIGH)
    torch.testing.assert_close(masked, torch.tensor(1.72 / 3, dtype=torch.float64))


def test_dual_clip_bounds_negative_advantage_loss():
    old = torch.zeros(1, dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    neg, pos = -one, one
    # r=5, A=-1: PPO loss max(5, 1.28) = 5; dual clip 3 caps it at -3A = 3
    assert ppo_policy_loss(log(5.0), old, neg, one, LOW, HIGH).item() == pytest.approx(5.0)
    assert ppo_policy_loss(log(5.0), old, neg, one, LOW, HIGH, 3.0).item() == pytest.approx(3.0)
    # positive advantage is untouched: max(-5, -1.28) = -1.28
    assert ppo_policy_loss(log(5.0), old, pos, one, LOW, HIGH, 3.0).item() == pytest.approx(-1.28)
    with pytest.raises(ConfigError, match="> 1"):
        ppo_policy_loss(log(5.0), old, neg, one, LOW, HIGH, dual_clip=0.5)


def test_ppo_token_grain_broadcasts_advantages_and_aggregates():
    new = log(1.5, 1.0, 0.5, 1.0).reshape(2, 2, 1)  # [B=2, H=2, A=1]
    old = torch.zeros_like(new)
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    # entries: b0: -1.28, -1.0   b1: 0.8, 1.0
    full = torch.ones(2, dtype=torch.float64)
    loss = ppo_policy_loss(new, old, adv, full, LOW, HIGH, agg="token-mean")
    torch.testing.assert_close(loss, torch.tensor(-0.48 / 4, dtype=torch.float64))
    # A per-action mask that drops b0's second action makes the two aggregations differ:
    per_action = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    token = ppo_policy_loss(new, old, adv, per_action, LOW, HIGH, agg="token-mean")
    seq = ppo_policy_loss(new, old, adv, per_action, LOW, HIGH, agg="seq-mean")
    torch.testing.assert_close(token, torch.tensor(0.52 / 3, dtype=torch.float64))  # mean of 3
    torch.testing.assert_close(seq, torch.tensor((-1.28 + 0.9) / 2, dtype=torch.float64))
    with pytest.raises(ConfigError, match="token-mean, seq-mean"):
        ppo_policy_loss(new, old, adv, full, LOW, HIGH, agg="sum")


@pytest.mark.parametrize("level", ["token", "action", "chunk"])
def test_ppo_gradient_equals_policy_gradient_at_ratio_one(level):
    torch.manual_seed(0)
    batch, horizon, dims = 5, 3, 2
    mean = torch.randn(batch, horizon, dims, requires_grad=True)
    actions = torch.randn(batch, horizon, dims)
    adv = torch.randn(batch)
    mask = torch.ones(batch)

    def token_logprob():
        return torch.distributions.Normal(mean, 1.0).log_prob(actions)

    lp = aggregate_logprob(token_logprob(), level)
    (ppo_grad,) = torch.autograd.grad(ppo_policy_loss(lp, lp.detach(), adv, mask, LOW, HIGH), mean)
    lp = aggregate_logprob(token_logprob(), level)
    adv_b = adv.reshape(batch, *(1,) * (lp.ndim - 1))
    (pg_grad,) = torch.autograd.grad(-(adv_b * lp).mean(), mean)
    torch.testing.assert_close(ppo_grad, pg_grad)
    assert pg_grad.abs().sum() > 0


def test_value_loss_plain_clipped_and_huber():
    value = torch.tensor([1.0, 2.0], dtype=torch.float64)
    old = torch.tensor([0.5, 2.5], dtype=torch.float64)
    returns = torch.tensor([2.0, 0.0], dtype=torch.float64)
    mask = torch.ones(2, dtype=torch.float64)
    # 0.5*1^2 = 0.5, 0.5*2^2 = 2 -> 1.25
    torch.testing.assert_close(value_loss(value, old, returns, mask), torch.tensor(1.25).double())
    # clipped values 0.7, 2.3 -> 0.5*1.3^2 = 0.845, 0.5*2.3^2 = 2.645 (both worse) -> 1.745
    clipped = value_loss(value, old, returns, mask, clip_eps=0.2)
    torch.testing.assert_close(clipped, torch.tensor(1.745).double())
    # Huber delta 1: |d|=1 -> 0.5; |d|=2 -> 1*(2 - 0.5) = 1.5 -> 1.0
    huber = value_loss(value, old, returns, mask, huber_delta=1.0)
    torch.testing.assert_close(huber, torch.tensor(1.0).double())
    only_first = value_loss(value, old, returns, torch.tensor([1.0, 0.0]).double())
    torch.testing.assert_close(only_first, torch.tensor(0.5).double())


def test_entropy_loss_is_negative_masked_mean():
    entropy = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    torch.testing.assert_close(entropy_loss(entropy, torch.tensor([1.0, 0.0])), torch.tensor(-1.5))
    torch.testing.assert_close(entropy_loss(entropy, torch.ones(2)), torch.tensor(-2.5))


def test_kl_estimators_by_hand():
    lp = torch.tensor([-1.0, -2.0], dtype=torch.float64)
    ref = torch.tensor([-1.5, -1.0], dtype=torch.float64)
    # d = lp - ref = [0.5, -1];  k1 = mean d = -0.25
    torch.testing.assert_close(kl_penalty(lp, ref, "k1"), torch.tensor(-0.25).double())
    # k3 = exp(-d) + d - 1: exp(-0.5) - 0.5 = 0.1065306597,  e - 2 = 0.7182818285
    k3 = kl_penalty(lp, ref, "k3")
    torch.testing.assert_close(k3, torch.tensor((0.1065306597 + 0.7182818285) / 2).double())
    masked = kl_penalty(lp, ref, "k3", mask=torch.tensor([1.0, 0.0]).double())
    torch.testing.assert_close(masked, torch.tensor(0.1065306597).double())
    assert kl_penalty(lp, lp, "k3").item() == 0.0
    with pytest.raises(ConfigError, match="k1, k3"):
        kl_penalty(lp, ref, "k2")


def test_masked_mean_ignores_garbage_and_is_zero_when_empty():
    values = torch.tensor([1.0, math.inf, math.nan], requires_grad=True)
    torch.testing.assert_close(
        masked_mean(values, torch.tensor([1.0, 0.0, 0.0])), torch.tensor(1.0)
    )
    empty = masked_mean(values, torch.zeros(3))
    assert empty.item() == 0.0
    empty.backward()  # an all-dropped batch still yields a (zero) gradient, not nan
    assert values.grad is not None and values.grad.tolist() == [0.0, 0.0, 0.0]
