"""Share of the action noise the chain likelihood sees, and the zero-x_1 option that makes it 1."""

import pytest
import torch

from rl_post.config import ConfigError

from .helpers import make_obs, make_policy


def test_zero_initial_noise_chain_starts_at_zero_and_logprob_is_exact():
    policy = make_policy("flow_tiny", sampler="flow_noise", initial_noise="zero")
    obs = make_obs(6)
    out = policy.act(obs, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.stored["chain"][:, 0], torch.zeros_like(out.stored["chain"][:, 0]))
    evaluated = policy.evaluate(obs, out.stored)
    assert torch.allclose(evaluated.logprob, out.logprob, atol=1e-5)
    # No prior density term: the log-prob is the sum of the step densities only.
    random_start = make_policy("flow_tiny", sampler="flow_noise")
    with torch.no_grad():
        random_start.load_state_dict(policy.state_dict())
    prior = torch.distributions.Normal(0.0, 1.0).log_prob(torch.zeros(()))
    assert torch.allclose(
        random_start.evaluate(obs, out.stored).logprob, evaluated.logprob + prior, atol=1e-5
    )


def test_zero_initial_noise_deterministic_policy_is_the_noise_free_chain():
    policy = make_policy("flow_tiny", initial_noise="zero")
    obs = make_obs(4)
    first = policy.act(obs, mode="deterministic", generator=torch.Generator().manual_seed(1))
    second = policy.act(obs, mode="deterministic", generator=torch.Generator().manual_seed(2))
    assert torch.equal(first.actions, second.actions)  # no randomness left


@pytest.mark.parametrize("sampler", ["flow_noise", "flow_sde"])
def test_noise_share_is_one_with_a_fixed_start(sampler):
    policy = make_policy("flow_tiny", sampler=sampler, initial_noise="zero")
    share = policy.noise_share(make_obs(4), 3, 6, torch.Generator().manual_seed(0))
    assert share == pytest.approx(1.0, abs=1e-9)


def test_noise_share_grows_with_the_injected_noise():
    obs = make_obs(6)

    def share(level: float) -> float:
        policy = make_policy("flow_tiny", sampler="flow_sde", noise_level=level)
        return policy.noise_share(obs, 8, 8, torch.Generator().manual_seed(0))

    tiny, large = share(1e-4), share(1.0)
    assert tiny < 0.01  # almost all variance from x_1, which the likelihood cannot see
    assert large > 10 * tiny and large <= 1.0 + 1e-9


def test_unknown_initial_noise_names_the_choices():
    with pytest.raises(ConfigError, match="random, zero"):
        make_policy("flow_tiny", initial_noise="gaussian")
