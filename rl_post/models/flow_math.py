"""Pure math of flow-matching sampling and its log-likelihood (pi0 convention).

x_t = t * noise + (1 - t) * action; sampling runs t from 1 to 0 in K steps of d = 1/K.
Step i (0-based) goes from t_i = 1 - i*d to t_i - d. The velocity target is noise - action.
Chains are stored as [N, K+1, H, A] with chain[:, 0] = x at t=1 (the noise sample) and
chain[:, K] = x at t=0 (the normalized action).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rl_post.models.policy import StepGaussians

LOG_2PI = math.log(2.0 * math.pi)


def time_grid(num_steps: int, device: torch.device | None = None) -> torch.Tensor:
    """[K+1] times 1, 1-d, ..., 0."""
    return 1.0 - torch.arange(num_steps + 1, device=device, dtype=torch.float32) / num_steps


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, std^2)."""
    z = (x - mean) / std
    return -0.5 * z * z - torch.log(std) - 0.5 * LOG_2PI


def gaussian_entropy(std: torch.Tensor) -> torch.Tensor:
    """Elementwise entropy of N(., std^2): 0.5 * log(2 pi e) + log std."""
    return 0.5 * (LOG_2PI + 1.0) + torch.log(std)


def ode_step(x_t: torch.Tensor, velocity: torch.Tensor, dt: float) -> torch.Tensor:
    """Euler step of the probability-flow ODE: x_{t-d} = x_t - d * v."""
    return x_t - dt * velocity


def bounded_sigma(raw: torch.Tensor, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Map an unbounded head output into [sigma_min, sigma_max] (sigmoid)."""
    return sigma_min + (sigma_max - sigma_min) * torch.sigmoid(raw)


def sde_sigma(t: torch.Tensor, noise_level: float, t_max: float) -> torch.Tensor:
    """Flow-SDE noise scale sigma_t = a * sqrt(t / (1 - min(t, t_max))) (finite at t = 1)."""
    return noise_level * torch.sqrt(t / (1.0 - t.clamp(max=t_max)))


def sde_step_mean_std(
    x_t: torch.Tensor, velocity: torch.Tensor, t: torch.Tensor, dt: float, sigma_t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the Flow-SDE transition x_t -> x_{t-d}.

    x0_hat = x_t - t v, x1_hat = x_t + (1 - t) v,
    mu = x0_hat (1 - (t - d)) + x1_hat ((t - d) - sigma_t^2 d / (2 t)),  std = sqrt(d) sigma_t.
    t and sigma_t broadcast against x_t (e.g. [B, 1, 1]). With sigma_t = 0 this is the ODE step.
    """
    x0_hat = x_t - t * velocity
    x1_hat = x_t + (1.0 - t) * velocity
    t_next = t - dt
    mean = x0_hat * (1.0 - t_next) + x1_hat * (t_next - sigma_t**2 * dt / (2.0 * t))
    return mean, math.sqrt(dt) * sigma_t


# ----- chains: the sampling loop and its exact log-likelihood, shared by every flow policy -------
#
# A policy supplies `step_fn(x_t, t) -> (velocity, mean, std)`: the velocity over the whole latent
# x_t [B, H, D] and the Gaussian transition over its first `sampled_dims` entries (mean/std
# [B, H, A], see `transition_mean_std`). Dimensions beyond `sampled_dims` (e.g. the zero padding of
# a VLA's 32-dim action space) always follow the ODE step: they are deterministic functions of x_1
# and of the sampled entries, so the chain density is the prior of x_1 times the Gaussian densities
# of the sampled entries alone, and the likelihood stays exact.

StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass
class FlowChain:
    chain: torch.Tensor  # [N, K+1, H, D]: x at t = 1, 1-d, ..., 0
    logprob: (
        torch.Tensor
    )  # [N, H, A] prior + stochastic step log-densities (zeros when deterministic)
    sde_step: torch.Tensor | None  # [N] the one stochastic step (sde_mode=one), else None


def transition_mean_std(
    sampler: str,
    x_t: torch.Tensor,
    velocity: torch.Tensor,
    t: torch.Tensor,
    dt: float,
    *,
    noise_std: torch.Tensor | None = None,
    noise_level: float = 0.0,
    sde_t_max: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std [B, H, A] of one stochastic step from x_t [B, H, A] at times t [B].

    flow_noise: mean = ODE step, std = `noise_std` (the noise head's sigma); flow_sde: the Flow-SDE
    transition with sigma_t = noise_level * sqrt(t / (1 - min(t, sde_t_max))).
    """
    if sampler == "flow_noise":
        if noise_std is None:
            raise ValueError("flow_noise transitions need the noise head's std")
        return ode_step(x_t, velocity, dt), noise_std
    t3 = t[:, None, None]
    sigma_t = sde_sigma(t3, noise_level, sde_t_max)
    mean, std = sde_step_mean_std(x_t, velocity, t3, dt, sigma_t)
    return mean, std.expand_as(mean)


def sample_chain(
    x_1: torch.Tensor,
    num_steps: int,
    step_fn: StepFn,
    *,
    stochastic: bool,
    one_step: bool,
    sampled_dims: int,
    generator: torch.Generator | None = None,
    prior: bool = True,
) -> FlowChain:
    """Run K denoising steps from x_1 [N, H, D]; stochastic steps draw N(mean, std^2).
    prior=False: x_1 was not sampled (a fixed start), so it adds no log N(x_1; 0, I) term.

    Random draws, in order: the one stochastic step per sample (one_step), then per step a
    standard normal of x's full shape (only its first `sampled_dims` entries are used).
    """
    n, device = x_1.shape[0], x_1.device
    a = sampled_dims
    dt = 1.0 / num_steps
    grid = time_grid(num_steps, device)
    x = x_1
    chain = [x]
    prior_x = x[..., :a]
    logprob = (
        gaussian_log_density(prior_x, torch.zeros_like(prior_x), torch.ones_like(prior_x))
        if prior
        else torch.zeros_like(prior_x)
    )
    sde_step = None
    if stochastic and one_step:
        sde_step = torch.randint(0, num_steps, (n,), generator=generator, device=device)
    for i in range(num_steps):
        t = grid[i].expand(n)
        velocity, mean, std = step_fn(x, t)
        ode = ode_step(x, velocity, dt)
        if not stochastic:
            x = ode
        else:
            noise = torch.randn(x.shape, generator=generator, device=device)
            sampled = mean + std * noise[..., :a]
            step_logprob = gaussian_log_density(sampled, mean, std)
            if sde_step is not None:
                chosen = (sde_step == i)[:, None, None]
                sampled = torch.where(chosen, sampled, ode[..., :a])
                logprob = logprob + torch.where(chosen, step_logprob, 0.0)
            else:
                logprob = logprob + step_logprob
            x = sampled if a == x.shape[-1] else torch.cat([sampled, ode[..., a:]], dim=-1)
        chain.append(x)
    return FlowChain(
        chain=torch.stack(chain, dim=1),
        logprob=logprob if stochastic else torch.zeros_like(logprob),
        sde_step=sde_step,
    )


def chain_steps(chain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stored chain [N, K+1, H, D] -> (x_t, x_next) [N*K, H, D] sample-major, and t [N*K]."""
    n, k = chain.shape[0], chain.shape[1] - 1
    x_t = chain[:, :-1].flatten(0, 1)
    x_next = chain[:, 1:].flatten(0, 1)
    t = time_grid(k, chain.device)[:-1].repeat(n)
    return x_t, x_next, t


def stochastic_step_mask(
    num_samples: int, num_steps: int, sde_step: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    """[N, K] bool: the steps that were sampled (every step, or the stored one of sde_mode=one)."""
    if sde_step is None:
        return torch.ones(num_samples, num_steps, dtype=torch.bool, device=device)
    steps = torch.arange(num_steps, device=device)
    return sde_step.to(device)[:, None] == steps[None, :]


def chain_log_likelihood(
    chain: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    stochastic: torch.Tensor,
    sampled_dims: int,
    prior: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact log-prob and entropy estimate [N, H, A] of a stored chain (prior=False: x_1 was a
    fixed start and has no density or entropy term).

    mean/std [N*K, H, A]: the transitions recomputed from chain_steps(chain) with the current
    weights; stochastic [N, K] from stochastic_step_mask. log p = log N(x_1; 0, I) + the SUM of the
    stochastic steps' Gaussian log-densities; entropy = the prior's plus those steps' entropies.
    """
    n, k = chain.shape[0], chain.shape[1] - 1
    a = sampled_dims
    x_next = chain[:, 1:].flatten(0, 1)[..., :a]
    step_logprob = gaussian_log_density(x_next, mean, std).unflatten(0, (n, k))
    step_entropy = gaussian_entropy(std).unflatten(0, (n, k))
    mask = stochastic[:, :, None, None]
    x_1 = chain[:, 0, ..., :a]
    if prior:
        prior_logprob = gaussian_log_density(x_1, torch.zeros_like(x_1), torch.ones_like(x_1))
        prior_entropy = 0.5 * (LOG_2PI + 1.0)
    else:
        prior_logprob, prior_entropy = torch.zeros_like(x_1), 0.0
    logprob = prior_logprob + torch.where(mask, step_logprob, 0.0).sum(dim=1)
    entropy = prior_entropy + torch.where(mask, step_entropy, 0.0).sum(dim=1)
    return logprob, entropy


def chain_step_gaussians(
    mean: torch.Tensor,
    std: torch.Tensor,
    stochastic: torch.Tensor,
    select_actions: Callable[[torch.Tensor], torch.Tensor],
) -> StepGaussians:
    """The transitions of chain_log_likelihood ([N*K, H, A] sample-major mean/std, [N, K]
    stochastic) in StepGaussians' [N, H, K, A] layout, with `select_actions` (the policy's
    likelihood slice of dim 1) applied like it is to the log-prob."""
    n, k = stochastic.shape
    return StepGaussians(
        mean=select_actions(mean.unflatten(0, (n, k)).transpose(1, 2)),
        std=select_actions(std.unflatten(0, (n, k)).transpose(1, 2)),
        active=stochastic,
    )
