import math

import pytest
import torch

from rl_post.algorithms.stats import (
    approx_kl,
    clip_fraction,
    explained_variance,
    normalize_advantages,
    ratio_mean_max,
)


def test_clip_fraction_counts_ratios_outside_the_trust_region():
    ratio = torch.tensor([1.5, 0.5, 1.1, 0.7, 1.0])
    assert clip_fraction(ratio, torch.ones(5), 0.2, 0.28) == pytest.approx(3 / 5)
    assert clip_fraction(ratio, torch.tensor([0.0, 1, 1, 1, 1]), 0.2, 0.28) == pytest.approx(2 / 4)
    assert math.isnan(clip_fraction(ratio, torch.zeros(5), 0.2, 0.28))


def test_approx_kl_by_hand():
    # r=2: (2 - 1) - ln 2 = 0.3068528; r=1: 0
    log_ratio = torch.tensor([math.log(2.0), 0.0], dtype=torch.float64)
    assert approx_kl(log_ratio, torch.ones(2)) == pytest.approx(0.3068528194 / 2)


def test_ratio_mean_max_over_mask():
    mean, top = ratio_mean_max(torch.tensor([1.5, 0.5, 3.0]), torch.tensor([1.0, 1.0, 0.0]))
    assert (mean, top) == (pytest.approx(1.0), pytest.approx(1.5))


def test_explained_variance_by_hand():
    returns = torch.tensor([1.0, 2.0, 3.0, 4.0])
    values = torch.tensor([1.0, 2.0, 3.0, 3.0])
    # Var(R) = 5/3, Var(R - V) = Var([0,0,0,1]) = 0.75/3 = 0.25 -> 1 - 0.25 / (5/3) = 0.85
    assert explained_variance(values, returns, torch.ones(4)) == pytest.approx(0.85)
    assert explained_variance(returns, returns, torch.ones(4)) == pytest.approx(1.0)
    assert math.isnan(explained_variance(values, torch.ones(4), torch.ones(4)))


def test_normalize_advantages_uses_masked_sample_stats():
    adv = torch.tensor([1.0, 2.0, 3.0, 100.0])
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])
    # masked mean 2, sample std 1
    out = normalize_advantages(adv, mask, eps=0.0)
    torch.testing.assert_close(out, torch.tensor([-1.0, 0.0, 1.0, 0.0]))
