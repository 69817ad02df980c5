"""model.likelihood_actions=executed: only the first execute_steps chunk actions carry log-probs."""

import pytest
import torch

from rl_post.config import ConfigError

from .helpers import make_obs, make_policy


@pytest.mark.parametrize("name", ["flow_tiny", "token_tiny"])
def test_executed_slice_matches_the_full_likelihood(name):
    sampler = {"sampler": "flow_sde"} if name == "flow_tiny" else {}
    full = make_policy(name, action_horizon=4, execute_steps=2, **sampler)
    sliced = make_policy(
        name, action_horizon=4, execute_steps=2, likelihood_actions="executed", **sampler
    )
    sliced.load_state_dict(full.state_dict())
    obs = make_obs(3)
    out_full = full.act(obs, generator=torch.Generator().manual_seed(5))
    out_sliced = sliced.act(obs, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out_full.actions, out_sliced.actions)  # sampling is unchanged
    assert out_sliced.logprob.shape == (3, 2, full.action_dim)
    assert torch.allclose(out_sliced.logprob, out_full.logprob[:, :2])
    ev_full = full.evaluate(obs, out_full.stored)
    ev_sliced = sliced.evaluate(obs, out_sliced.stored)
    assert torch.allclose(ev_sliced.logprob, ev_full.logprob[:, :2], atol=1e-5)
    assert torch.allclose(ev_sliced.entropy, ev_full.entropy[:, :2], atol=1e-5)
    assert torch.allclose(ev_sliced.logprob, out_sliced.logprob, atol=1e-4)


def test_unknown_choice_is_rejected():
    with pytest.raises(ConfigError, match="likelihood_actions"):
        make_policy("token_tiny", likelihood_actions="some")
