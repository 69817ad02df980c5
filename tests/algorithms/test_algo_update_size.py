"""Post-update statistics and the KL-adaptive learning rate, against hand-computed values."""

import math

import torch

from rl_post.algorithms.update_size import (
    adapt_lr,
    decision_log_ratio,
    finish_update_size,
    rms_action_change,
    update_size_sums,
)


def test_decision_log_ratio_sums_every_token_of_a_decision():
    new = torch.tensor([[[0.1, 0.2], [0.3, 0.4]]])  # [B=1, H=2, A=2]
    old = torch.zeros_like(new)
    assert torch.allclose(decision_log_ratio(new, old), torch.tensor([1.0]))


def test_update_size_statistics_by_hand():
    # Two decisions of one token each: log-ratios +0.5 and -0.5; a masked third is ignored.
    new = torch.tensor([0.5, -0.5, 9.0]).reshape(3, 1, 1)
    old = torch.zeros_like(new)
    mask = torch.tensor([1.0, 1.0, 0.0])
    stats = finish_update_size(update_size_sums(new, old, mask, "token", 0.2, 0.28))
    r1, r2 = math.exp(0.5), math.exp(-0.5)
    k3 = ((r1 - 1 - 0.5) + (r2 - 1 + 0.5)) / 2
    assert math.isclose(stats["post_kl"], k3, rel_tol=1e-9)
    assert math.isclose(stats["post_kl_k1"], 0.0, abs_tol=1e-12)  # -(0.5) - (-0.5)
    assert math.isclose(stats["post_kl_token"], k3, rel_tol=1e-9)
    assert math.isclose(stats["post_ratio_mean"], (r1 + r2) / 2, rel_tol=1e-9)
    assert math.isclose(stats["post_ratio_std"], abs(r1 - r2) / 2, rel_tol=1e-6)
    assert math.isclose(stats["post_ratio_min"], r2) and math.isclose(stats["post_ratio_max"], r1)
    assert stats["post_clip_frac"] == 1.0  # 1.65 > 1.28 and 0.61 < 0.8


def test_kl_per_decision_is_larger_than_per_token_for_long_chunks():
    new = torch.full((4, 3, 2), 0.1)
    old = torch.zeros_like(new)
    stats = finish_update_size(update_size_sums(new, old, torch.ones(4), "token", 0.2, 0.2))
    token_k3 = math.expm1(0.1) - 0.1
    decision_k3 = math.expm1(0.6) - 0.6
    # float32 log-probs: 0.1 is not exact
    assert math.isclose(stats["post_kl_token"], token_k3, rel_tol=1e-6)
    assert math.isclose(stats["post_kl"], decision_k3, rel_tol=1e-6)


def test_empty_mask_gives_nan_not_zero():
    new = torch.zeros(2, 1, 1)
    stats = finish_update_size(update_size_sums(new, new, torch.zeros(2), "token", 0.2, 0.2))
    assert all(math.isnan(v) for v in stats.values())


def test_rms_action_change():
    before = torch.zeros(2, 1, 2)
    after = torch.tensor([[[3.0, 0.0]], [[0.0, 4.0]]])
    assert math.isclose(rms_action_change(before, after), math.sqrt((9 + 16) / 4))


def test_adaptive_lr_moves_outside_the_dead_band_and_clamps():
    assert adapt_lr(1e-4, 0.05, 0.01, 2.0, 1e-6, 1e-3) == 5e-5  # KL > 2 x target: halve
    assert adapt_lr(1e-4, 0.001, 0.01, 2.0, 1e-6, 1e-3) == 2e-4  # KL < target / 2: double
    assert adapt_lr(1e-4, 0.015, 0.01, 2.0, 1e-6, 1e-3) == 1e-4  # inside the band: keep
    assert adapt_lr(8e-4, 0.0, 0.01, 2.0, 1e-6, 1e-3) == 1e-3  # clamped at max
    assert adapt_lr(1e-6, 5.0, 0.01, 2.0, 1e-6, 1e-3) == 1e-6  # clamped at min
    assert adapt_lr(1e-4, math.nan, 0.01, 2.0, 1e-6, 1e-3) == 1e-4
