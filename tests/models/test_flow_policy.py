import pytest
import torch

from rl_post.config import ConfigError
from rl_post.models.flow_math import time_grid

from .helpers import RGB_SPEC, STATE_SPEC, make_obs, make_policy

SAMPLERS = [
    {"sampler": "flow_noise"},
    {"sampler": "flow_sde", "sde_mode": "all"},
    {"sampler": "flow_sde", "sde_mode": "one"},
]
IDS = ["flow_noise", "flow_sde_all", "flow_sde_one"]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=IDS)
def test_evaluate_reproduces_rollout_logprob(sampler):
    policy = make_policy("flow_tiny", **sampler)
    obs = make_obs(16)
    out = policy.act(obs, generator=torch.Generator().manual_seed(3))
    k, h, a = policy.num_steps, policy.action_horizon, policy.action_dim
    assert out.actions.shape == out.logprob.shape == (16, h, a)
    assert out.stored["chain"].shape == (16, k + 1, h, a)
    assert out.value is not None and out.value.shape == (16,)
    evaluated = policy.evaluate(obs, out.stored)
    assert evaluated.logprob.shape == evaluated.entropy.shape == (16, h, a)
    assert torch.allclose(evaluated.logprob, out.logprob, atol=1e-5, rtol=0)
    assert torch.allclose(evaluated.value, out.value, atol=1e-6)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=IDS)
def test_evaluate_logprob_moves_with_the_weights(sampler):
    policy = make_policy("flow_tiny", **sampler)
    obs = make_obs(8)
    out = policy.act(obs, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        policy.expert.velocity_out.bias.add_(0.05)
    changed = policy.evaluate(obs, out.stored).logprob
    assert (changed - out.logprob).abs().max() > 1e-3


def test_flow_noise_logprob_is_prior_plus_step_densities():
    """Recompute the chain log-lik by hand with torch.distributions.Normal for one sample."""
    policy = make_policy("flow_tiny", sampler="flow_noise")
    obs = make_obs(2)
    out = policy.act(obs, generator=torch.Generator().manual_seed(5))
    chain = out.stored["chain"]
    with torch.no_grad():
        context, mask = policy.expert.context(policy.encode(obs))
        expected = torch.distributions.Normal(0.0, 1.0).log_prob(chain[:, 0])
        for i, t in enumerate(time_grid(policy.num_steps)[:-1]):
            velocity, hidden = policy.expert(chain[:, i], t.expand(2), context, mask)
            step = torch.distributions.Normal(
                chain[:, i] - policy.dt * velocity, policy.noise_head(hidden)
            )
            expected = expected + step.log_prob(chain[:, i + 1])
    assert torch.allclose(out.logprob, expected, atol=1e-5)


def test_one_step_sde_stores_the_step_and_uses_it():
    policy = make_policy("flow_tiny", sampler="flow_sde", sde_mode="one")
    obs = make_obs(32)
    out = policy.act(obs, generator=torch.Generator().manual_seed(2))
    step = out.stored["sde_step"]
    assert step.shape == (32,) and step.dtype == torch.int64
    assert 0 <= int(step.min()) and int(step.max()) < policy.num_steps
    assert len(set(step.tolist())) > 1  # drawn per sample
    shifted = dict(out.stored, sde_step=(step + 1) % policy.num_steps)
    assert (policy.evaluate(obs, shifted).logprob - out.logprob).abs().max() > 1e-2
    with pytest.raises(ConfigError, match="sde_step"):
        policy.evaluate(obs, {"chain": out.stored["chain"]})


@pytest.mark.parametrize("sampler", SAMPLERS[:2], ids=IDS[:2])
def test_gradients_reach_expert_and_noise_head(sampler):
    policy = make_policy("flow_tiny", **sampler)
    obs = make_obs(8)
    out = policy.act(obs)
    policy.evaluate(obs, out.stored).logprob.sum().backward()
    expert_grad = policy.expert.velocity_out.weight.grad
    backbone_grad = policy.backbone.blocks[0].mlp[0].weight.grad
    assert expert_grad is not None and expert_grad.abs().sum() > 0
    assert backbone_grad is not None and backbone_grad.abs().sum() > 0
    noise_grad = policy.noise_head.mlp[-1].weight.grad
    if sampler["sampler"] == "flow_noise":
        assert noise_grad is not None and noise_grad.abs().sum() > 0
    # Flow-Noise entropy depends on sigma_phi, so an entropy bonus trains the noise head too.
    if sampler["sampler"] == "flow_noise":
        policy.zero_grad()
        policy.evaluate(obs, out.stored).entropy.sum().backward()
        assert policy.noise_head.mlp[-1].weight.grad.abs().sum() > 0


def test_entropy_is_prior_plus_gaussian_step_entropies():
    policy = make_policy("flow_tiny", sampler="flow_sde", sde_mode="all", noise_level=0.5)
    obs = make_obs(4)
    out = policy.act(obs)
    entropy = policy.evaluate(obs, out.stored).entropy
    t = time_grid(policy.num_steps)[:-1]
    sigma = 0.5 * torch.sqrt(t / (1 - t.clamp(max=1 - policy.dt)))
    std = policy.dt**0.5 * sigma
    expected = torch.distributions.Normal(0.0, 1.0).entropy() + sum(
        torch.distributions.Normal(0.0, s).entropy() for s in std
    )
    assert torch.allclose(entropy, torch.full_like(entropy, float(expected)), atol=1e-5)


def test_deterministic_mode_is_ode_with_zero_logprob():
    policy = make_policy("flow_tiny", sampler="flow_noise")
    obs = make_obs(6)
    gen_a, gen_b = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    first = policy.act(obs, "deterministic", generator=gen_a)
    second = policy.act(obs, "deterministic", generator=gen_b)
    assert torch.all(first.logprob == 0)
    assert torch.equal(first.actions, second.actions)
    chain = first.stored["chain"]
    with torch.no_grad():
        context, mask = policy.expert.context(policy.encode(obs))
        velocity, _ = policy.expert(chain[:, 0], torch.ones(6), context, mask)
    assert torch.allclose(chain[:, 1], chain[:, 0] - policy.dt * velocity, atol=1e-6)


def test_actions_are_clipped_after_an_unclipped_chain():
    policy = make_policy("flow_tiny", sampler="flow_sde", noise_level=3.0)
    out = policy.act(make_obs(64), generator=torch.Generator().manual_seed(0))
    final = policy.normalizer.unnormalize_action(out.stored["chain"][:, -1])
    low = torch.tensor(STATE_SPEC.action_low)
    high = torch.tensor(STATE_SPEC.action_high)
    assert bool((final < low).any() | (final > high).any())  # the chain leaves the bounds ...
    assert torch.all(out.actions >= low) and torch.all(out.actions <= high)  # ... actions do not
    assert torch.equal(out.actions, final.clamp(low, high))


def test_same_seed_same_actions_different_seed_different_actions():
    policy = make_policy("flow_tiny")
    obs = make_obs(8)
    a = policy.act(obs, generator=torch.Generator().manual_seed(11))
    b = policy.act(obs, generator=torch.Generator().manual_seed(11))
    c = policy.act(obs, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.logprob, b.logprob)
    assert not torch.equal(a.actions, c.actions)


def test_rgb_and_state_only_obs():
    policy = make_policy("flow_tiny", spec=RGB_SPEC)
    with_rgb = make_obs(5, rgb=True)
    out_rgb = policy.act(with_rgb, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(
        policy.evaluate(with_rgb, out_rgb.stored).logprob, out_rgb.logprob, atol=1e-5
    )
    state_only = {k: v for k, v in with_rgb.items() if k != "rgb"}
    out_state = policy.act(state_only, generator=torch.Generator().manual_seed(0))
    assert out_state.actions.shape == out_rgb.actions.shape
    assert not torch.equal(out_state.actions, out_rgb.actions)  # the cameras matter
    with pytest.raises(ConfigError, match="camera"):
        policy.act(make_obs(5, rgb=True, cameras=1))
    state_policy = make_policy("flow_tiny", spec=STATE_SPEC)
    with pytest.raises(ConfigError, match="state-only"):
        state_policy.act(with_rgb)


def test_ode_sampler_refuses_stochastic_use():
    policy = make_policy("flow_tiny", sampler="ode")
    obs = make_obs(3)
    assert policy.act(obs, "deterministic").actions.shape == (3, 4, 4)
    with pytest.raises(ConfigError, match="flow_noise or flow_sde"):
        policy.act(obs)


def test_bc_loss_decreases_on_a_fixed_batch():
    policy = make_policy("flow_tiny")
    obs = make_obs(32)
    chunk = torch.rand(32, policy.action_horizon, policy.action_dim) * 0.8 - 0.4
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    torch.manual_seed(0)
    losses = []
    for _ in range(30):
        loss, stats = policy.bc_loss(obs, chunk)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(stats["bc_loss"])
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_bc_loss_mask_ignores_padded_actions():
    policy = make_policy("flow_tiny")
    obs = make_obs(4)
    chunk = torch.zeros(4, policy.action_horizon, policy.action_dim)
    mask = torch.zeros(4, policy.action_horizon, dtype=torch.bool)
    mask[:, 0] = True
    torch.manual_seed(0)
    loss, _ = policy.bc_loss(obs, chunk, mask)
    loss.backward()
    assert torch.isfinite(loss)
    with pytest.raises(ConfigError, match="action_horizon"):
        policy.bc_loss(obs, torch.zeros(4, 3, policy.action_dim))


def test_value_head_detach_and_parameter_groups():
    policy = make_policy("flow_tiny", detach_value_head=True)
    policy.value(make_obs(4)).sum().backward()
    assert policy.backbone.blocks[0].mlp[0].weight.grad is None
    assert policy.value_head.mlp[0].weight.grad is not None
    groups = policy.parameter_groups()
    assert {id(p) for p in groups["value"]} == {id(p) for p in policy.value_head.parameters()}
    assert len(groups["policy"]) + len(groups["value"]) == len(list(policy.parameters()))
    no_critic = make_policy("flow_tiny", value_head=False)
    assert not no_critic.has_value_head and no_critic.act(make_obs(2)).value is None
    with pytest.raises(ConfigError, match="value_head"):
        no_critic.value(make_obs(2))
