"""Pure math of flow-matching sampling and its log-likelihood (pi0 convention).

x_t = t * noise + (1 - t) * action; sampling runs t from 1 to 0 in K steps of d = 1/K.
Step i (0-based) goes from t_i = 1 - i*d to t_i - d. The velocity target is noise - action.
Chains are stored as [N, K+1, H, A] with chain[:, 0] = x at t=1 (the noise sample) and
chain[:, K] = x at t=0 (the normalized action).
"""

from __future__ import annotations

import math

import torch

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
