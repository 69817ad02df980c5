"""Gaussian MLP policy (model=mlp_gaussian): exact log-probs and entropy, act/evaluate agreement,
clipping, normalization, behaviour cloning and checkpoints."""

import math

import pytest
import torch
from torch.distributions import Normal

from rl_post.config import ConfigError
from rl_post.learner.learner import split_param_groups
from rl_post.models import load_policy, save_policy

from .helpers import RGB_SPEC, STATE_SPEC, make_obs, make_policy, model_config


def reference_normal(policy, obs) -> Normal:
    """The distribution the policy should sample from, computed by hand from its parts."""
    with torch.no_grad():
        state = policy.normalizer.normalize_state(obs["state"])
        mean = policy.actor(state).view(-1, policy.action_horizon, policy.action_dim)
    return Normal(mean, policy.log_std.detach().exp().expand_as(mean))


def test_logprob_equals_torch_normal_and_evaluate_reproduces_act():
    policy = make_policy("mlp_gaussian", action_horizon=3, execute_steps=3, init_log_std=-0.3)
    obs = make_obs(7)
    out = policy.act(obs, generator=torch.Generator().manual_seed(0))
    sample = out.stored["sample"]
    assert sample.shape == out.logprob.shape == (7, 3, policy.action_dim)
    expected = reference_normal(policy, obs).log_prob(sample)
    assert torch.allclose(out.logprob, expected, atol=1e-6)
    evaluated = policy.evaluate(obs, out.stored)
    assert torch.equal(evaluated.logprob, out.logprob)  # same arithmetic: ratio exactly 1
    assert torch.equal(evaluated.value, out.value)


def test_entropy_is_exact_and_follows_log_std():
    policy = make_policy("mlp_gaussian")
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor([[-1.0, 0.0, 0.5, -2.0]]))
    obs = make_obs(5)
    evaluated = policy.evaluate(obs, policy.act(obs).stored)
    assert torch.allclose(evaluated.entropy, reference_normal(policy, obs).entropy(), atol=1e-6)
    hand = 0.5 * math.log(2 * math.pi * math.e) + torch.tensor([-1.0, 0.0, 0.5, -2.0])
    assert torch.allclose(evaluated.entropy[0, 0], hand, atol=1e-6)


def test_gradients_reach_mean_log_std_and_critic():
    policy = make_policy("mlp_gaussian")
    obs = make_obs(4)
    out = policy.act(obs)
    result = policy.evaluate(obs, out.stored)
    (result.logprob.sum() + result.value.sum()).backward()
    assert policy.actor[0].weight.grad.abs().sum() > 0
    assert policy.log_std.grad.abs().sum() > 0
    assert policy.value_head[0].weight.grad.abs().sum() > 0


def test_sampling_is_seeded_and_executed_actions_are_clipped_to_env_bounds():
    policy = make_policy("mlp_gaussian", init_log_std=1.0)  # wide: many samples leave the bounds
    obs = make_obs(64)
    a = policy.act(obs, generator=torch.Generator().manual_seed(3))
    b = policy.act(obs, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.logprob, b.logprob)
    low, high = torch.tensor(STATE_SPEC.action_low), torch.tensor(STATE_SPEC.action_high)
    assert torch.all(a.actions >= low) and torch.all(a.actions <= high)
    unclipped = policy.normalizer.unnormalize_action(a.stored["sample"])
    outside = (unclipped < low) | (unclipped > high)
    assert outside.any()  # the stored sample (and its log-prob) is the unclipped one
    assert torch.allclose(a.actions[~outside], unclipped[~outside], atol=1e-6)


def test_deterministic_mode_acts_with_the_mean():
    policy = make_policy("mlp_gaussian")
    obs = make_obs(5)
    out = policy.act(obs, "deterministic")
    mean = reference_normal(policy, obs).mean
    assert torch.allclose(out.actions, policy._to_env_units(mean), atol=1e-6)
    assert torch.all(out.logprob == 0)


def test_initial_mean_is_small_and_std_is_the_configured_one():
    policy = make_policy("mlp_gaussian")
    mean = reference_normal(policy, make_obs(32)).mean
    assert mean.abs().max() < 0.2  # small last-layer gain: the first actions are mostly noise
    assert torch.allclose(policy.log_std, torch.full_like(policy.log_std, -0.5))


def test_state_is_normalized_with_the_policy_statistics():
    policy = make_policy("mlp_gaussian")
    obs = make_obs(6)
    before = policy.act(obs, "deterministic").actions
    stats = {"state_mean": torch.full((9,), 0.5), "state_std": torch.full((9,), 2.0)}
    policy.set_normalization(stats)
    shifted = {**obs, "state": obs["state"] * 2.0 + 0.5}
    assert torch.allclose(policy.act(shifted, "deterministic").actions, before, atol=1e-6)


def test_likelihood_actions_executed_keeps_the_first_actions():
    full = make_policy("mlp_gaussian", action_horizon=4, execute_steps=2)
    sliced = make_policy(
        "mlp_gaussian", action_horizon=4, execute_steps=2, likelihood_actions="executed"
    )
    sliced.load_state_dict(full.state_dict())
    obs = make_obs(3)
    a = full.act(obs, generator=torch.Generator().manual_seed(1))
    b = sliced.act(obs, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.actions, b.actions)
    assert torch.equal(b.logprob, a.logprob[:, :2])
    assert sliced.evaluate(obs, b.stored).entropy.shape == (3, 2, 4)


def test_bc_nll_matches_hand_value_and_mse_leaves_the_std_alone():
    policy = make_policy("mlp_gaussian", action_horizon=2, execute_steps=2)
    obs = make_obs(5)
    chunk = torch.rand(5, 2, 4) * 0.8 - 0.4
    loss, stats = policy.bc_loss(obs, chunk)
    target = policy.normalizer.normalize_action(chunk)
    expected = -reference_normal(policy, obs).log_prob(target).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert stats["bc_mse"] == pytest.approx(
        ((reference_normal(policy, obs).mean - target) ** 2).mean().item(), rel=1e-5
    )
    mse_policy = make_policy("mlp_gaussian", action_horizon=2, execute_steps=2, bc_objective="mse")
    mse_loss, _ = mse_policy.bc_loss(obs, chunk)
    mse_loss.backward()
    assert mse_policy.log_std.grad is None


def test_bc_nll_fits_the_demo_spread():
    """On a constant state with demo actions of std 0.1 (normalized), NLL training moves the mean
    to the demo mean and the std to the demo spread."""
    torch.manual_seed(0)
    policy = make_policy("mlp_gaussian", hidden_sizes=[16])
    width = torch.tensor(STATE_SPEC.action_high) - torch.tensor(STATE_SPEC.action_low)
    normalized = 0.3 + 0.1 * torch.randn(512, 1, 4)
    actions = (normalized + 1.0) * 0.5 * width + torch.tensor(STATE_SPEC.action_low)
    obs = {"state": torch.zeros(512, 9)}
    optimizer = torch.optim.Adam(policy.parameters(), lr=0.02)
    for _ in range(400):
        loss, _ = policy.bc_loss(obs, actions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    mean = reference_normal(policy, {"state": torch.zeros(1, 9)}).mean
    assert torch.allclose(mean, normalized.mean(0, keepdim=True), atol=0.02)
    assert torch.allclose(policy.log_std.exp(), normalized.std(0), atol=0.02)


def test_critic_is_its_own_parameter_group():
    policy = make_policy("mlp_gaussian")
    groups = {g["name"]: g["params"] for g in split_param_groups(policy, ["value_head"], 1.0, 2.0)}
    critic = {id(p) for p in policy.value_head.parameters()}
    assert {id(p) for p in groups["value"]} == critic
    assert any(p is policy.log_std for p in groups["policy"])
    assert not critic & {id(p) for p in groups["policy"]}
    assert policy.parameter_groups()["value"] == list(policy.value_head.parameters())


def test_round_trip_and_fresh_critic(tmp_path):
    policy = make_policy("mlp_gaussian")
    with torch.no_grad():
        policy.log_std.fill_(-1.2)
    policy.set_normalization({"state_mean": torch.full((9,), 0.5)})
    save_policy(policy, tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt", spec=STATE_SPEC)
    obs = make_obs(6)
    a = policy.act(obs, generator=torch.Generator().manual_seed(2))
    b = loaded.act(obs, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.logprob, b.logprob)
    assert torch.equal(a.value, b.value)
    assert torch.equal(loaded.normalization_stats()["state_mean"], torch.full((9,), 0.5))
    sft = make_policy("mlp_gaussian", value_head=False)
    save_policy(sft, tmp_path / "sft")
    rl = load_policy(tmp_path / "sft", expect_config=model_config("mlp_gaussian"))
    assert rl.has_value_head and torch.equal(rl.actor[0].weight, sft.actor[0].weight)


def test_architecture_mismatch_and_bad_inputs_are_reported(tmp_path):
    save_policy(make_policy("mlp_gaussian"), tmp_path / "c")
    with pytest.raises(ConfigError, match=r"hidden_sizes: checkpoint \(256, 256, 256\)"):
        load_policy(tmp_path / "c", expect_config=model_config("mlp_gaussian", hidden_sizes=[64]))
    with pytest.raises(ConfigError, match="env.obs_mode=state"):
        make_policy("mlp_gaussian", spec=RGB_SPEC)
    with pytest.raises(ConfigError, match="activation"):
        make_policy("mlp_gaussian", activation="swish")
    with pytest.raises(ConfigError, match="hidden_sizes"):
        make_policy("mlp_gaussian", hidden_sizes=[])
    policy = make_policy("mlp_gaussian")
    with pytest.raises(ConfigError, match="no 'sample'"):
        policy.evaluate(make_obs(2), {"chain": torch.zeros(2)})
    with pytest.raises(ConfigError, match=r"expects \[N, 9\]"):
        policy.act({"state": torch.zeros(2, 5)})
