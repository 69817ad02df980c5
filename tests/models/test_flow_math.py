import math

import pytest
import torch

from rl_post.models.flow_math import (
    bounded_sigma,
    gaussian_entropy,
    gaussian_log_density,
    ode_step,
    sde_sigma,
    sde_step_mean_std,
    time_grid,
)


def test_time_grid_runs_from_one_to_zero():
    assert torch.allclose(time_grid(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))


def test_gaussian_log_density_matches_torch_normal():
    gen = torch.Generator().manual_seed(0)
    x, mean = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    std = torch.rand(5, 3, generator=gen) + 0.05
    expected = torch.distributions.Normal(mean, std).log_prob(x)
    assert torch.allclose(gaussian_log_density(x, mean, std), expected, atol=1e-6)


def test_gaussian_log_density_hand_value():
    # log N(1; 0, 2^2) = -0.5 * 0.25 - log 2 - 0.5 log(2 pi)
    value = gaussian_log_density(torch.tensor(1.0), torch.tensor(0.0), torch.tensor(2.0))
    assert value.item() == pytest.approx(-0.125 - math.log(2.0) - 0.5 * math.log(2 * math.pi))


def test_gaussian_entropy_matches_torch_normal():
    std = torch.tensor([0.02, 0.3, 1.0, 2.5])
    expected = torch.distributions.Normal(torch.zeros(4), std).entropy()
    assert torch.allclose(gaussian_entropy(std), expected, atol=1e-6)


def test_ode_step():
    assert ode_step(torch.tensor(1.0), torch.tensor(0.5), 0.25).item() == pytest.approx(0.875)


def test_bounded_sigma_stays_in_bounds():
    raw = torch.tensor([-1e4, 0.0, 1e4])
    sigma = bounded_sigma(raw, 0.02, 0.3)
    assert sigma.tolist() == pytest.approx([0.02, 0.16, 0.3])


def test_sde_sigma_hand_values_and_clamp_at_one():
    t = torch.tensor([0.5, 1.0])
    # a sqrt(t / (1 - min(t, t_max))): 0.5 * sqrt(0.5 / 0.5) = 0.5; at t=1: 0.5 * sqrt(1 / 0.25) = 1
    assert sde_sigma(t, 0.5, t_max=0.75).tolist() == pytest.approx([0.5, 1.0])


def test_sde_step_hand_values():
    x, v, t = torch.tensor(1.0), torch.tensor(0.5), torch.tensor(0.5)
    # x0_hat = 0.75, x1_hat = 1.25, t - d = 0.25
    # mu = 0.75 * 0.75 + 1.25 * (0.25 - 0.4^2 * 0.25 / 1.0) = 0.825; std = sqrt(0.25) * 0.4 = 0.2
    mean, std = sde_step_mean_std(x, v, t, 0.25, torch.tensor(0.4))
    assert mean.item() == pytest.approx(0.825)
    assert std.item() == pytest.approx(0.2)


def test_sde_step_without_noise_is_the_ode_step():
    gen = torch.Generator().manual_seed(1)
    x, v = torch.randn(6, generator=gen), torch.randn(6, generator=gen)
    t = torch.full((6,), 0.6)
    mean, std = sde_step_mean_std(x, v, t, 0.2, torch.zeros(6))
    assert torch.allclose(mean, ode_step(x, v, 0.2), atol=1e-6)
    assert torch.all(std == 0)
