"""Post-update statistics and the KL-adaptive learning rate, against hand-computed values."""

import math

import pytest
import torch

from rl_post.algorithms.update_size import (
    adapt_lr,
    adaptive_kl_key,
    decision_log_ratio,
    finish_kl_parts,
    finish_update_size,
    gaussian_kl_parts,
    kl_part_sums,
    rms_action_change,
    update_size_sums,
)
from rl_post.models.policy import StepGaussians


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


def test_gaussian_kl_parts_by_hand_and_they_sum_to_the_kl():
    # N(0, 1) -> N(1, 2^2): mean part 1 / (2 * 4); std part log 2 + 1 / 8 - 1 / 2
    mean_part, std_part = gaussian_kl_parts(
        torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([2.0])
    )
    assert math.isclose(float(mean_part), 0.125, rel_tol=1e-6)
    assert math.isclose(float(std_part), math.log(2.0) + 0.125 - 0.5, rel_tol=1e-6)
    old = torch.distributions.Normal(torch.tensor(0.0), torch.tensor(1.0))
    new = torch.distributions.Normal(torch.tensor(1.0), torch.tensor(2.0))
    kl = float(torch.distributions.kl_divergence(old, new))
    assert math.isclose(float(mean_part + std_part), kl, rel_tol=1e-6)


def test_gaussian_kl_std_part_is_zero_without_a_std_change_and_mean_part_without_a_move():
    m = torch.tensor([0.3, -1.0])
    s = torch.tensor([0.1, 0.5])
    mean_part, std_part = gaussian_kl_parts(m, s, m + 0.05, s)
    assert torch.all(std_part == 0) and torch.all(mean_part > 0)
    mean_part, std_part = gaussian_kl_parts(m, s, m, 0.5 * s)
    assert torch.all(mean_part == 0) and torch.all(std_part > 0)


def _gaussians(mean: torch.Tensor, std: float, active: list[list[bool]]) -> StepGaussians:
    return StepGaussians(mean, torch.full_like(mean, std), torch.tensor(active))


def test_kl_part_sums_count_active_steps_of_kept_decisions_only():
    # B=3 decisions, H=1, S=2 steps, A=2; step 1 of decision 0 was deterministic; decision 2 masked
    before = _gaussians(torch.zeros(3, 1, 2, 2), 1.0, [[True, False], [True, True], [True, True]])
    moved = torch.zeros(3, 1, 2, 2)
    moved[:, :, 0] = 1.0  # every entry of step 0 moves by 1: mean part 1/2 each
    moved[:, :, 1] = 2.0  # step 1 by 2: 2 each, seen only where active
    after = _gaussians(moved, 1.0, [[True, False], [True, True], [True, True]])
    sums = kl_part_sums(before, after, torch.tensor([1.0, 1.0, 0.0]))
    # decision 0: 2 entries x 0.5; decision 1: 2 x 0.5 + 2 x 2
    assert sums["sum_kl_mean_part"] == pytest.approx(1.0 + 5.0)
    assert sums["sum_kl_std_part"] == 0.0
    assert sums["n_part_decisions"] == 2.0 and sums["n_part_tokens"] == 4.0  # [H, A] entries
    stats = finish_kl_parts(sums)
    assert stats["post_kl_mean_part"] == pytest.approx(3.0)
    assert stats["post_kl_token_mean_part"] == pytest.approx(1.5)
    assert stats["post_kl_std_part"] == 0.0


def test_kl_parts_of_nothing_measured_are_nan():
    stats = finish_kl_parts({"n_part_decisions": 0.0, "n_part_tokens": 0.0})
    assert all(math.isnan(v) for v in stats.values())


def test_adaptive_kl_key_names_the_statistic_the_lr_steers_on():
    assert adaptive_kl_key("decision", "total") == "post_kl"
    assert adaptive_kl_key("token", "total") == "post_kl_token"
    assert adaptive_kl_key("decision", "mean") == "post_kl_mean_part"
    assert adaptive_kl_key("token", "mean") == "post_kl_token_mean_part"
