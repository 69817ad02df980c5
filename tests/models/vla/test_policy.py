"""SmolVLA and pi0 policies at tiny size: the cached denoising path equals LeRobot's training
forward, Flow-Noise / Flow-SDE log-probs are exact, and the Policy protocol holds."""

import pytest
import torch

from rl_post.config import ConfigError
from rl_post.models.flow_math import ode_step, time_grid

from .helpers import ACTION_DIM, make_obs, make_policy
from .reference import pi0_velocity, smolvla_velocity

KINDS = ["smolvla", "pi0"]
SAMPLERS = [
    {"sampler": "flow_noise"},
    {"sampler": "flow_sde", "sde_mode": "all"},
    {"sampler": "flow_sde", "sde_mode": "one"},
]
SAMPLER_IDS = ["flow_noise", "flow_sde_all", "flow_sde_one"]
REFERENCE = {"smolvla": smolvla_velocity, "pi0": pi0_velocity}


@pytest.fixture(scope="module", params=KINDS)
def kind(request):
    return request.param


@pytest.mark.parametrize("attention", ["cross_attn", "self_attn"])
def test_smolvla_cached_steps_equal_the_training_forward(attention):
    policy = make_policy("smolvla", attention_mode=attention).eval()
    _check_against_reference(policy, "smolvla")


def test_smolvla_with_fewer_expert_layers_equals_the_training_forward():
    policy = make_policy("smolvla", num_expert_layers=2, self_attn_every_n_layers=3).eval()
    _check_against_reference(policy, "smolvla")


def test_pi0_cached_steps_equal_the_merged_layer_forward():
    _check_against_reference(make_policy("pi0").eval(), "pi0")


def _check_against_reference(policy, kind):
    obs = make_obs(3, seed=1)
    obs["instruction"] = ["pick up the red cube now", "go", "push"]  # padded tokens matter
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(3, policy.action_horizon, policy.config.max_action_dim, generator=gen)
    t = torch.tensor([1.0, 0.55, 0.2])
    with torch.no_grad():
        ours, _ = policy._velocity(x_t, t, policy.encode(obs))
        reference = REFERENCE[kind](policy, obs, x_t, t)
    assert ours.shape == (3, policy.action_horizon, 32)
    assert torch.allclose(ours, reference, atol=1e-5, rtol=0), (ours - reference).abs().max()


def test_deterministic_act_is_the_euler_ode_of_the_reference(kind):
    policy = make_policy(kind).eval()
    obs = make_obs(2)
    out = policy.act(obs, mode="deterministic", generator=torch.Generator().manual_seed(4))
    chain = out.stored["chain"]
    x = chain[:, 0]
    with torch.no_grad():
        for t in time_grid(policy.num_steps)[:-1]:
            x = ode_step(x, REFERENCE[kind](policy, obs, x, t.expand(2)), policy.dt)
    assert torch.allclose(chain[:, -1], x, atol=1e-5)
    assert torch.equal(out.logprob, torch.zeros_like(out.logprob))
    expected = policy.normalizer.clip_to_env(policy.normalizer.unnormalize_action(x[..., :4]))
    assert torch.allclose(out.actions, expected, atol=1e-5)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=SAMPLER_IDS)
def test_evaluate_reproduces_act_logprobs(kind, sampler):
    policy = make_policy(kind, **sampler)
    obs = make_obs(5)
    out = policy.act(obs, generator=torch.Generator().manual_seed(3))
    h, k = policy.action_horizon, policy.num_steps
    assert out.actions.shape == out.logprob.shape == (5, h, ACTION_DIM)
    assert out.stored["chain"].shape == (5, k + 1, h, 32)
    evaluated = policy.evaluate(obs, out.stored)
    assert evaluated.logprob.shape == evaluated.entropy.shape == (5, h, ACTION_DIM)
    assert torch.allclose(evaluated.logprob, out.logprob, atol=1e-5, rtol=0)
    assert torch.allclose(evaluated.value, out.value, atol=1e-6)
    assert torch.allclose(policy.value(obs), out.value, atol=1e-6)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=SAMPLER_IDS)
def test_logprob_is_prior_plus_gaussian_steps_over_the_env_dims(kind, sampler):
    """By hand with torch.distributions.Normal, one step at a time; padding dims follow the ODE."""
    policy = make_policy(kind, **sampler)
    obs = make_obs(2)
    out = policy.act(obs, generator=torch.Generator().manual_seed(7))
    chain = out.stored["chain"]
    a = ACTION_DIM
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(chain[:, 0, :, :a])
    with torch.no_grad():
        cache = policy.encode(obs)
        for i, t in enumerate(time_grid(policy.num_steps)[:-1]):
            x = chain[:, i]
            velocity, hidden = policy._velocity(x, t.expand(2), cache)
            ode = x - policy.dt * velocity
            assert torch.allclose(chain[:, i + 1, :, a:], ode[..., a:], atol=1e-6)
            if policy.config.sampler == "flow_noise":
                mean, std = ode[..., :a], policy.noise_head(hidden)
            else:
                t_next = t - policy.dt
                sigma = policy.config.noise_level * torch.sqrt(t / (1 - min(t, policy.sde_t_max)))
                x0, x1 = x - t * velocity, x + (1 - t) * velocity
                mean = (x0 * (1 - t_next) + x1 * (t_next - sigma**2 * policy.dt / (2 * t)))[..., :a]
                std = (policy.dt**0.5 * sigma).expand_as(mean)
            term = torch.distributions.Normal(mean, std).log_prob(chain[:, i + 1, :, :a])
            if "sde_step" in out.stored:
                term = torch.where((out.stored["sde_step"] == i)[:, None, None], term, 0.0)
            expected = expected + term
    assert torch.allclose(out.logprob, expected, atol=1e-4)


def test_evaluate_logprob_moves_with_the_expert_weights(kind):
    policy = make_policy(kind)
    obs = make_obs(3)
    out = policy.act(obs, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        policy.model.action_out_proj.bias.add_(0.05)
    assert (policy.evaluate(obs, out.stored).logprob - out.logprob).abs().max() > 1e-3


def test_one_step_sde_stores_its_step(kind):
    policy = make_policy(kind, sampler="flow_sde", sde_mode="one")
    out = policy.act(make_obs(6), generator=torch.Generator().manual_seed(1))
    step = out.stored["sde_step"]
    assert step.shape == (6,) and bool(((step >= 0) & (step < policy.num_steps)).all())
    with pytest.raises(ConfigError, match="sde_step"):
        policy.evaluate(make_obs(6), {"chain": out.stored["chain"]})


def test_gradients_reach_expert_noise_head_and_value_head(kind):
    policy = make_policy(kind, sampler="flow_noise", train="expert")
    obs = make_obs(3)
    out = policy.act(obs, generator=torch.Generator().manual_seed(0))
    evaluated = policy.evaluate(obs, out.stored)
    (evaluated.logprob.sum() + evaluated.value.sum()).backward()
    expert = policy.model.action_in_proj.weight.grad
    assert expert is not None and expert.abs().sum() > 0
    assert policy.noise_head.mlp[-1].weight.grad.abs().sum() > 0
    assert policy.value_head.mlp[-1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in policy.vlm_module().parameters())


def test_same_seed_same_actions_and_other_seed_other_actions(kind):
    policy = make_policy(kind)
    obs = make_obs(2)
    a = policy.act(obs, generator=torch.Generator().manual_seed(5)).actions
    b = policy.act(obs, generator=torch.Generator().manual_seed(5)).actions
    c = policy.act(obs, generator=torch.Generator().manual_seed(6)).actions
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_actions_are_in_env_bounds(kind):
    policy = make_policy(kind, sampler="flow_sde", noise_level=2.0, sde_mode="all")
    out = policy.act(make_obs(4), generator=torch.Generator().manual_seed(0))
    low, high = policy.normalizer.env_low, policy.normalizer.env_high
    assert bool(((out.actions >= low) & (out.actions <= high)).all())


@pytest.mark.parametrize("source", ["prefix", "expert"])
def test_value_sources_depend_on_the_observation_only(kind, source):
    policy = make_policy(kind, value_source=source)
    obs = make_obs(3)
    first = policy.act(obs, generator=torch.Generator().manual_seed(0)).value
    second = policy.act(obs, generator=torch.Generator().manual_seed(1)).value
    assert first.shape == (3,) and torch.allclose(first, second, atol=1e-6)


def test_instruction_changes_the_actions(kind):
    policy = make_policy(kind)
    obs = make_obs(2)
    other = dict(obs, instruction=["stack the cubes", "open the drawer"])
    a = policy.act(obs, "deterministic", generator=torch.Generator().manual_seed(0)).actions
    b = policy.act(other, "deterministic", generator=torch.Generator().manual_seed(0)).actions
    again = policy.act(obs, "deterministic", generator=torch.Generator().manual_seed(0)).actions
    assert torch.equal(a, again) and not torch.allclose(a, b)


def test_bc_loss_decreases_on_a_fixed_batch(kind):
    policy = make_policy(kind, train="all")
    obs = make_obs(4)
    chunk = torch.rand(4, policy.action_horizon, ACTION_DIM) * 0.5

    def loss_at_fixed_noise() -> float:
        torch.manual_seed(123)
        with torch.no_grad():
            return float(policy.bc_loss(obs, chunk)[0])

    before = loss_at_fixed_noise()
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=3e-3)
    torch.manual_seed(0)
    for _ in range(40):
        loss, stats = policy.bc_loss(obs, chunk)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss_at_fixed_noise() < 0.6 * before and "bc_loss" in stats


def test_ode_sampler_refuses_stochastic_use(kind):
    policy = make_policy(kind, sampler="ode")
    with pytest.raises(ConfigError, match="no log-likelihood"):
        policy.act(make_obs(1))
    assert policy.act(make_obs(1), mode="deterministic").actions.shape[0] == 1


def test_obs_without_images_or_instruction_is_a_clear_error(kind):
    policy = make_policy(kind)
    obs = make_obs(2)
    with pytest.raises(ConfigError, match="rgb"):
        policy.act({k: v for k, v in obs.items() if k != "rgb"})
    with pytest.raises(ConfigError, match="instruction"):
        policy.act({k: v for k, v in obs.items() if k != "instruction"})
    fixed = make_policy(kind, obs={"instruction": "pick up the cube"})
    assert fixed.act({k: v for k, v in obs.items() if k != "instruction"}).actions.shape[0] == 2


def test_fixed_initial_noise_is_exact_and_fully_likelihood_visible(kind):
    policy = make_policy(kind, initial_noise="zero", sampler="flow_sde", sde_mode="all")
    obs = make_obs(2)
    out = policy.act(obs, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.stored["chain"][:, 0], torch.zeros_like(out.stored["chain"][:, 0]))
    assert torch.allclose(policy.evaluate(obs, out.stored).logprob, out.logprob, atol=1e-5)
    assert policy.noise_share(obs, 2, 3, torch.Generator().manual_seed(1)) == pytest.approx(1.0)
    random_start = make_policy(kind, sampler="flow_sde", sde_mode="all")
    share = random_start.noise_share(obs, 3, 3, torch.Generator().manual_seed(1))
    assert 0.0 < share < 1.0


def test_bf16_autocast_evaluate_is_finite_and_close(kind):
    """The GPU learner runs evaluate() under bf16 autocast (learner.precision=bf16)."""
    policy = make_policy(kind, sampler="flow_sde", sde_mode="one")
    obs = make_obs(3)
    out = policy.act(obs, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        evaluated = policy.evaluate(obs, out.stored)
    assert evaluated.logprob.dtype == torch.float32
    assert torch.isfinite(evaluated.logprob).all() and torch.isfinite(evaluated.value).all()
    assert (evaluated.logprob - out.logprob).abs().max() < 0.1
