"""The prefix keys/values computed once per decision and shared by the K denoising steps give the
same velocities, log-probs and gradients as repeating the prefix for every step."""

import torch

from rl_post.models.flow_math import gaussian_log_density, time_grid

from .helpers import make_obs, make_policy


def _velocities(policy, obs, chain, shared: bool):
    n, k = chain.shape[0], policy.num_steps
    context, mask = policy.expert.context(policy.encode(obs))
    x_t = chain[:, :-1].flatten(0, 1)
    t = time_grid(k)[:-1].repeat(n)
    if shared:
        return policy.expert(x_t, t, None, mask, policy.expert.context_kv(context))
    return policy.expert(x_t, t, context.repeat_interleave(k, 0), mask.repeat_interleave(k, 0))


def test_shared_prefix_matches_repeated_prefix_values_and_gradients():
    policy = make_policy("flow_tiny", sampler="flow_noise")
    obs = make_obs(5)
    chain = torch.randn(5, policy.num_steps + 1, policy.action_horizon, policy.action_dim)
    results = []
    for shared in (True, False):
        policy.zero_grad()
        velocity, hidden = _velocities(policy, obs, chain, shared)
        (velocity.square().sum() + hidden.sin().sum()).backward()
        grads = torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])
        results.append((velocity.detach(), hidden.detach(), grads))
    (v1, h1, g1), (v2, h2, g2) = results
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-6)
    torch.testing.assert_close(h1, h2, rtol=0, atol=1e-6)
    # float32 summation order differs: compare at 1e-6 of the largest gradient entry
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6 * float(g2.abs().max()))


def test_evaluate_logprob_equals_the_repeated_prefix_computation():
    policy = make_policy("flow_tiny", sampler="flow_noise")
    obs = make_obs(6)
    out = policy.act(obs, generator=torch.Generator().manual_seed(2))
    chain = out.stored["chain"]
    with torch.no_grad():
        evaluated = policy.evaluate(obs, out.stored).logprob
        velocity, hidden = _velocities(policy, obs, chain, shared=False)
        x_t = chain[:, :-1].flatten(0, 1)
        mean = x_t - policy.dt * velocity
        steps = gaussian_log_density(chain[:, 1:].flatten(0, 1), mean, policy.noise_head(hidden))
        prior = gaussian_log_density(chain[:, 0], torch.zeros(()), torch.ones(()))
        repeated = prior + steps.unflatten(0, (6, policy.num_steps)).sum(dim=1)
    # log-probs of ~30 nats: float32 summation order differs, nothing else
    torch.testing.assert_close(evaluated, repeated, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(evaluated, out.logprob, rtol=1e-6, atol=1e-5)
