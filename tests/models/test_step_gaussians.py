"""Gaussian policies return the step Gaussians behind their log-prob: rebuilding the log-prob
from them and the stored sample gives evaluate()'s log-prob (the learner's KL split reads them)."""

import pytest
import torch

from rl_post.models.flow_math import LOG_2PI, gaussian_log_density
from rl_post.models.mlp_policy import SAMPLE_KEY

from .helpers import make_obs, make_policy
from .vla import helpers as vla


def _rebuilt_logprob(gaussians, samples: torch.Tensor) -> torch.Tensor:
    """samples [N, H, S, A] at the Gaussians' entries -> sum over active steps [N, H, A]."""
    density = gaussian_log_density(samples, gaussians.mean, gaussians.std)
    return torch.where(gaussians.active[:, None, :, None], density, 0.0).sum(dim=2)


def _chain_samples(chain: torch.Tensor, horizon: int, action_dim: int) -> torch.Tensor:
    """Stored chain [N, K+1, H, D] -> the sampled x of each step [N, horizon, K, action_dim]."""
    return chain[:, 1:, :horizon, :action_dim].transpose(1, 2)


@pytest.mark.parametrize(
    "overrides",
    [
        {"sampler": "flow_noise", "initial_noise": "zero"},
        {"sampler": "flow_sde", "sde_mode": "one"},
    ],
)
def test_flow_policy_step_gaussians_rebuild_its_log_prob(overrides):
    policy = make_policy(
        "flow_tiny", action_horizon=4, execute_steps=2, likelihood_actions="executed", **overrides
    )
    obs = make_obs(3)
    out = policy.act(obs, generator=torch.Generator().manual_seed(1))
    ev = policy.evaluate(obs, out.stored)
    g = ev.gaussians
    assert g.mean.shape == (3, 2, policy.num_steps, policy.action_dim)
    chain = out.stored["chain"]
    rebuilt = _rebuilt_logprob(g, _chain_samples(chain, 2, policy.action_dim))
    if overrides.get("initial_noise", "random") != "zero":
        x_1 = chain[:, 0, :2]
        rebuilt = rebuilt - 0.5 * x_1 * x_1 - 0.5 * LOG_2PI  # the prior of x_1
    assert torch.allclose(rebuilt, ev.logprob, atol=1e-4)
    if overrides["sampler"] == "flow_sde":
        assert torch.equal(g.active.sum(dim=1), torch.ones(3, dtype=torch.long))  # one step


def test_gaussian_mlp_step_gaussians_rebuild_its_log_prob():
    policy = make_policy("mlp_gaussian")
    obs = make_obs(4)
    out = policy.act(obs, generator=torch.Generator().manual_seed(2))
    ev = policy.evaluate(obs, out.stored)
    sample = out.stored[SAMPLE_KEY][:, : ev.logprob.shape[1]].unsqueeze(2)
    assert torch.allclose(_rebuilt_logprob(ev.gaussians, sample), ev.logprob, atol=1e-5)


@pytest.mark.parametrize("kind", ["smolvla", "pi0"])
def test_vla_step_gaussians_rebuild_its_log_prob(kind):
    policy = vla.make_policy(kind, sampler="flow_sde", initial_noise="random")
    obs = vla.make_obs(2)
    out = policy.act(obs, generator=torch.Generator().manual_seed(3))
    ev = policy.evaluate(obs, out.stored)
    horizon = ev.logprob.shape[1]
    chain = out.stored["chain"]
    rebuilt = _rebuilt_logprob(ev.gaussians, _chain_samples(chain, horizon, policy.action_dim))
    x_1 = chain[:, 0, :horizon, : policy.action_dim]
    rebuilt = rebuilt - 0.5 * x_1 * x_1 - 0.5 * LOG_2PI
    assert torch.allclose(rebuilt, ev.logprob, atol=1e-3)
