"""model.policy_state_drop: state dims the policy does not see (the state critic still does)."""

import pytest
import torch

from rl_post.config import ConfigError
from rl_post.models import load_policy, save_policy
from rl_post.models.config import parse_model_config

from .helpers import make_obs, make_policy, model_config


def _with_dims_changed(obs: dict, dims: slice) -> dict:
    state = obs["state"].clone()
    state[:, dims] += 5.0
    return dict(obs, state=state)


@pytest.mark.parametrize("name", ["flow_tiny", "token_tiny"])
def test_dropped_dims_do_not_reach_the_policy(name):
    policy = make_policy(name, policy_state_drop=[[2, 4], [7, 9]])
    obs = make_obs(5)
    changed = _with_dims_changed(obs, slice(2, 4))
    a = policy.act(obs, mode="deterministic", generator=torch.Generator().manual_seed(0))
    b = policy.act(changed, mode="deterministic", generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.actions, b.actions)
    kept = _with_dims_changed(obs, slice(4, 5))
    c = policy.act(kept, mode="deterministic", generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a.actions, c.actions)


def test_a_state_critic_still_sees_the_dropped_dims():
    policy = make_policy("flow_tiny", policy_state_drop=[[2, 4]], value_input="state")
    obs = make_obs(5)
    assert not torch.equal(policy.value(obs), policy.value(_with_dims_changed(obs, slice(2, 4))))


def test_ranges_are_checked_and_name_the_key():
    assert parse_model_config(
        model_config("flow_tiny", policy_state_drop=[[9, 18]])
    ).policy_state_drop == ((9, 18),)
    with pytest.raises(ConfigError, match=r"policy_state_drop takes \[start, stop\].*\[5, 5\]"):
        parse_model_config(model_config("flow_tiny", policy_state_drop=[[5, 5]]))
    with pytest.raises(ConfigError, match=r"\[8, 12\] runs past this env's state \(9 values\)"):
        make_policy("flow_tiny", policy_state_drop=[[8, 12]])
    with pytest.raises(ConfigError, match="Gaussian MLP reads the whole state"):
        parse_model_config(model_config("mlp_gaussian", policy_state_drop=[[0, 1]]))


def test_the_drop_is_saved_and_a_checkpoint_needs_the_same_one(tmp_path):
    policy = make_policy("flow_tiny", policy_state_drop=[[2, 4]])
    save_policy(policy, tmp_path / "c")
    loaded = load_policy(tmp_path / "c")
    assert loaded.config.policy_state_drop == ((2, 4),)
    obs = make_obs(3)
    gen = torch.Generator
    assert torch.equal(
        policy.act(obs, mode="deterministic", generator=gen().manual_seed(0)).actions,
        loaded.act(obs, mode="deterministic", generator=gen().manual_seed(0)).actions,
    )
    with pytest.raises(
        ConfigError, match=r"policy_state_drop: checkpoint \(\(2, 4\),\) vs config \(\)"
    ):
        load_policy(tmp_path / "c", expect_config=model_config("flow_tiny"))
