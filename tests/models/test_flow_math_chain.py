"""flow_math's chain sampler and chain likelihood (used by the SmolVLA / pi0 policies) against a
hand-written loop with torch.distributions."""

import pytest
import torch

from rl_post.models.flow_math import (
    chain_log_likelihood,
    chain_steps,
    sample_chain,
    stochastic_step_mask,
    transition_mean_std,
)

K, DT = 4, 0.25


def _velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.sin(x) + t[:, None, None] * x  # any smooth field of x and t


def _step(sampler: str, a: int):
    def step(x, t):
        v = _velocity(x, t)
        std = torch.full_like(x[..., :a], 0.1) + 0.05 * x[..., :a].abs()
        mean, std = transition_mean_std(
            sampler, x[..., :a], v[..., :a], t, DT, noise_std=std, noise_level=0.4, sde_t_max=0.75
        )
        return v, mean, std

    return step


@pytest.mark.parametrize("sampler", ["flow_noise", "flow_sde"])
@pytest.mark.parametrize("one_step", [False, True])
def test_sampled_chain_log_prob_by_hand_and_recomputed(sampler, one_step):
    a, d = 2, 5  # 2 sampled dims, 3 padding dims that follow the ODE
    x_1 = torch.randn(3, 6, d, generator=torch.Generator().manual_seed(0))
    out = sample_chain(
        x_1,
        K,
        _step(sampler, a),
        stochastic=True,
        one_step=one_step,
        sampled_dims=a,
        generator=torch.Generator().manual_seed(1),
    )
    chain = out.chain
    assert chain.shape == (3, K + 1, 6, d) and out.logprob.shape == (3, 6, a)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x_1[..., :a])
    for i in range(K):
        t = torch.full((3,), 1.0 - i * DT)
        v, mean, std = _step(sampler, a)(chain[:, i], t)
        assert torch.allclose(chain[:, i + 1, ..., a:], chain[:, i, ..., a:] - DT * v[..., a:])
        term = torch.distributions.Normal(mean, std).log_prob(chain[:, i + 1, ..., :a])
        if one_step:
            chosen = (out.sde_step == i)[:, None, None]
            term = torch.where(chosen, term, 0.0)
            ode = chain[:, i, ..., :a] - DT * v[..., :a]
            assert torch.allclose(
                torch.where(chosen, chain[:, i + 1, ..., :a], ode), chain[:, i + 1, ..., :a]
            )
        expected = expected + term
    assert torch.allclose(out.logprob, expected, atol=1e-5)
    x_t, _, t = chain_steps(chain)
    _, mean, std = _step(sampler, a)(x_t, t)
    stochastic = stochastic_step_mask(3, K, out.sde_step, chain.device)
    logprob, entropy = chain_log_likelihood(chain, mean, std, stochastic, a)
    assert torch.allclose(logprob, out.logprob, atol=1e-5)
    assert entropy.shape == (3, 6, a)


def test_deterministic_chain_is_euler_and_fixed_start_has_no_prior():
    x_1 = torch.zeros(2, 3, 2)
    out = sample_chain(
        x_1, K, _step("flow_noise", 2), stochastic=False, one_step=False, sampled_dims=2
    )
    x = x_1
    for i in range(K):
        x = x - DT * _velocity(x, torch.full((2,), 1.0 - i * DT))
    assert torch.allclose(out.chain[:, -1], x) and torch.equal(out.logprob, torch.zeros(2, 3, 2))
    noisy = sample_chain(
        x_1,
        K,
        _step("flow_noise", 2),
        stochastic=True,
        one_step=False,
        sampled_dims=2,
        generator=torch.Generator().manual_seed(0),
        prior=False,
    )
    with_prior = sample_chain(
        x_1,
        K,
        _step("flow_noise", 2),
        stochastic=True,
        one_step=False,
        sampled_dims=2,
        generator=torch.Generator().manual_seed(0),
        prior=True,
    )
    prior = torch.distributions.Normal(0.0, 1.0).log_prob(x_1)
    assert torch.allclose(with_prior.logprob - noisy.logprob, prior, atol=1e-6)
