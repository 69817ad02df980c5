"""Gradient signal-to-noise from batch splits, against hand-computed values."""

import math

import pytest
import torch

from rl_post.algorithms.grad_snr import assign_splits, gradient_snr


def test_two_splits_signal_is_the_dot_product_and_noise_a_quarter_of_the_difference():
    stats = gradient_snr([torch.tensor([3.0, 1.0]), torch.tensor([1.0, 1.0])])
    assert math.isclose(stats["signal"], 4.0)  # g1 . g2
    assert math.isclose(stats["noise"], 1.0)  # |g1 - g2|^2 / 4 = 4 / 4
    assert math.isclose(stats["snr"], 4.0)
    assert math.isclose(stats["cosine"], 4.0 / (math.sqrt(10) * math.sqrt(2)))


def test_orthogonal_halves_have_no_signal():
    stats = gradient_snr([torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])])
    assert math.isclose(stats["signal"], 0.0, abs_tol=1e-12)
    assert math.isclose(stats["snr"], 0.0, abs_tol=1e-12)
    assert math.isclose(stats["cosine"], 0.0, abs_tol=1e-12)


def test_many_splits_match_the_unbiased_estimators():
    grads = [torch.tensor([1.0, 2.0]), torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])]
    mean = torch.stack(grads).mean(0)
    spread = sum(float(((g - mean) ** 2).sum()) for g in grads) / 2
    noise = spread / 3
    stats = gradient_snr(grads)
    assert math.isclose(stats["noise"], noise, rel_tol=1e-9)
    assert math.isclose(stats["signal"], float(mean.pow(2).sum()) - noise, rel_tol=1e-9)


def test_needs_two_splits():
    with pytest.raises(ValueError, match="at least 2"):
        gradient_snr([torch.ones(3)])


def test_splits_keep_units_together_and_balance_them():
    keys = torch.tensor([5, 5, 7, 7, 7, 9, 11, 11])
    splits = assign_splits(keys, 2, torch.Generator().manual_seed(0))
    for key in keys.unique():
        assert splits[keys == key].unique().numel() == 1
    units_per_split = [keys[splits == s].unique().numel() for s in range(2)]
    assert sorted(units_per_split) == [2, 2]
    with pytest.raises(ValueError, match="cannot split 4 independent units"):
        assign_splits(keys, 5, torch.Generator().manual_seed(0))
