"""Observation and action normalization carried inside the policy (and so its checkpoint).

States are standardized with a per-dimension mean/std. Actions map from [low, high] (env bounds by
default, or dataset quantile bounds from SFT data) to [-1, 1]; the policy works in that space and
unnormalizes at the end. Env bounds are kept separately: outputs are clipped to what the env
accepts, which may be wider than quantile bounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec

STAT_KEYS = ("state_mean", "state_std", "action_low", "action_high", "env_low", "env_high")
# Floors that keep divisions finite for constant state dims and zero-width action bounds.
MIN_STATE_STD = 1e-6
MIN_ACTION_WIDTH = 1e-6


def _env_bounds(spec: ObsSpec) -> tuple[torch.Tensor, torch.Tensor]:
    if not spec.action_low and not spec.action_high:
        inf = torch.full((spec.action_dim,), math.inf)
        return -inf, inf
    low = torch.tensor(spec.action_low, dtype=torch.float32)
    high = torch.tensor(spec.action_high, dtype=torch.float32)
    if low.shape != (spec.action_dim,) or high.shape != (spec.action_dim,):
        raise ConfigError(
            f"ObsSpec action bounds have {low.numel()}/{high.numel()} entries but action_dim="
            f"{spec.action_dim}; the env must report one low/high per action dimension"
        )
    return low, high


class Normalizer(nn.Module):
    """Buffers: state_mean/std [D], action_low/high [A] (normalization), env_low/high [A] (clip)."""

    state_mean: torch.Tensor
    state_std: torch.Tensor
    action_low: torch.Tensor
    action_high: torch.Tensor
    env_low: torch.Tensor
    env_high: torch.Tensor

    def __init__(self, spec: ObsSpec) -> None:
        super().__init__()
        env_low, env_high = _env_bounds(spec)
        # Without data stats, normalize by the env bounds; unbounded envs fall back to [-1, 1].
        finite = torch.isfinite(env_low) & torch.isfinite(env_high)
        norm_low = torch.where(finite, env_low, torch.full_like(env_low, -1.0))
        norm_high = torch.where(finite, env_high, torch.full_like(env_high, 1.0))
        self.register_buffer("state_mean", torch.zeros(spec.state_dim))
        self.register_buffer("state_std", torch.ones(spec.state_dim))
        self.register_buffer("action_low", norm_low)
        self.register_buffer("action_high", norm_high)
        self.register_buffer("env_low", env_low)
        self.register_buffer("env_high", env_high)

    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        return (state - self.state_mean) / self.state_std.clamp_min(MIN_STATE_STD)

    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        width = (self.action_high - self.action_low).clamp_min(MIN_ACTION_WIDTH)
        return 2.0 * (action - self.action_low) / width - 1.0

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        width = (self.action_high - self.action_low).clamp_min(MIN_ACTION_WIDTH)
        return (action + 1.0) * 0.5 * width + self.action_low

    def clip_to_env(self, action: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(action, self.env_high), self.env_low)

    def stats(self) -> dict[str, torch.Tensor]:
        return {key: getattr(self, key).detach().clone() for key in STAT_KEYS}

    @torch.no_grad()
    def set_stats(self, stats: Mapping[str, torch.Tensor | Sequence[float]]) -> None:
        unknown = sorted(set(stats) - set(STAT_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown normalization stat(s) {unknown}; valid keys: {', '.join(STAT_KEYS)}"
            )
        for key, value in stats.items():
            current = getattr(self, key)
            tensor = torch.as_tensor(value, dtype=current.dtype, device=current.device)
            if tensor.shape != current.shape:
                raise ConfigError(
                    f"normalization stat '{key}' has shape {tuple(tensor.shape)} but the policy "
                    f"expects {tuple(current.shape)}; compute stats for this env's state/action dims"
                )
            if key == "state_std" and bool((tensor <= 0).any()):
                raise ConfigError("normalization stat 'state_std' must be > 0 in every dimension")
            current.copy_(tensor)
        if bool((self.action_high <= self.action_low).any()):
            raise ConfigError("normalization needs action_high > action_low in every dimension")


def compute_normalization_stats(
    states: torch.Tensor,
    actions: torch.Tensor,
    quantiles: tuple[float, float] | None = None,
) -> dict[str, torch.Tensor]:
    """Stats from demonstrations: states [M, D], actions [M, A].

    quantiles=None uses the min/max of the actions as bounds; (0.01, 0.99) gives OpenVLA-style
    quantile bounds that ignore outliers (actions beyond them saturate at the end bins).
    """
    states = states.reshape(-1, states.shape[-1]).float()
    actions = actions.reshape(-1, actions.shape[-1]).float()
    if quantiles is None:
        low, high = actions.min(dim=0).values, actions.max(dim=0).values
    else:
        q = torch.tensor(quantiles, dtype=actions.dtype)
        low, high = torch.quantile(actions, q, dim=0)
    # Constant action dims would give zero width: widen them symmetrically.
    flat = (high - low) < MIN_ACTION_WIDTH
    low = torch.where(flat, low - 1.0, low)
    high = torch.where(flat, high + 1.0, high)
    std = states.std(dim=0, unbiased=False) if states.shape[0] > 1 else torch.ones(states.shape[1])
    return {
        "state_mean": states.mean(dim=0),
        "state_std": std.clamp_min(MIN_STATE_STD),
        "action_low": low,
        "action_high": high,
    }
