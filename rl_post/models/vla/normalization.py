"""LeRobot's state/action normalization (NormalizerProcessorStep / UnnormalizerProcessorStep),
carried inside the policy as buffers so rollout workers and checkpoints get it with the weights.

Modes per feature type, as in lerobot/processor/normalize_processor.py (eps = 1e-8):
  MEAN_STD   (x - mean) / (std + eps);              inverse: x * std + mean
  MIN_MAX    2 (x - min) / (max - min) - 1;         inverse: (x + 1) / 2 (max - min) + min
  QUANTILES  the same with q01 / q99, QUANTILE10 with q10 / q90 (a zero width becomes eps)
  IDENTITY   unchanged
Buffers hold the two statistics of each mode (`state_a`/`state_b`, `action_a`/`action_b`) and the
env's action bounds (`env_low`/`env_high`) that sampled actions are clipped to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from rl_post.config import ConfigError

NORM_MODES = ("MEAN_STD", "MIN_MAX", "QUANTILES", "QUANTILE10", "IDENTITY")
# LeRobot's stat names of each mode (safetensors keys '<feature>.<stat>')
STAT_NAMES = {
    "MEAN_STD": ("mean", "std"),
    "MIN_MAX": ("min", "max"),
    "QUANTILES": ("q01", "q99"),
    "QUANTILE10": ("q10", "q90"),
}
DEFAULT_EPS = 1e-8
# rl_post's own stat keys (SFT, rl_post.models.normalization.STAT_KEYS) accepted by set_stats
RL_POST_STAT_KEYS = ("state_mean", "state_std", "action_low", "action_high", "env_low", "env_high")


def check_mode(mode: str, feature: str) -> str:
    if mode not in NORM_MODES:
        raise ConfigError(
            f"normalization mode '{mode}' for {feature} is not supported; use one of "
            + ", ".join(NORM_MODES)
        )
    return mode


class LeRobotNormalizer(nn.Module):
    state_a: torch.Tensor
    state_b: torch.Tensor
    action_a: torch.Tensor
    action_b: torch.Tensor
    env_low: torch.Tensor
    env_high: torch.Tensor

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        state_mode: str,
        action_mode: str,
        env_low: torch.Tensor,
        env_high: torch.Tensor,
        eps: float = DEFAULT_EPS,
    ) -> None:
        super().__init__()
        self.state_mode = check_mode(state_mode, "STATE")
        self.action_mode = check_mode(action_mode, "ACTION")
        self.eps = eps
        self.register_buffer("state_a", torch.zeros(state_dim))
        self.register_buffer("state_b", torch.ones(state_dim))
        self.register_buffer("action_a", torch.zeros(action_dim))
        self.register_buffer("action_b", torch.ones(action_dim))
        self.register_buffer("env_low", env_low.float().clone())
        self.register_buffer("env_high", env_high.float().clone())
        if self.state_mode != "MEAN_STD" and self.state_mode != "IDENTITY":
            self.state_a.fill_(-1.0)  # min/max-type modes: the identity map on [-1, 1]
        self._init_action_from_env_bounds()

    @torch.no_grad()
    def _init_action_from_env_bounds(self) -> None:
        """Without data stats, map the env's action box onto [-1, 1] (unbounded dims: identity)."""
        finite = torch.isfinite(self.env_low) & torch.isfinite(self.env_high)
        low = torch.where(finite, self.env_low, torch.full_like(self.env_low, -1.0))
        high = torch.where(finite, self.env_high, torch.full_like(self.env_high, 1.0))
        if self.action_mode == "MEAN_STD":
            self.action_a.copy_((low + high) / 2)
            self.action_b.copy_((high - low) / 2)
        elif self.action_mode != "IDENTITY":
            self.action_a.copy_(low)
            self.action_b.copy_(high)

    def _forward(
        self, x: torch.Tensor, mode: str, a: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        if mode == "IDENTITY":
            return x
        if mode == "MEAN_STD":
            return (x - a) / (b + self.eps)
        width = torch.where(b - a == 0, torch.full_like(a, self.eps), b - a)
        return 2.0 * (x - a) / width - 1.0

    def _inverse(
        self, x: torch.Tensor, mode: str, a: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        if mode == "IDENTITY":
            return x
        if mode == "MEAN_STD":
            return x * b + a
        width = torch.where(b - a == 0, torch.full_like(a, self.eps), b - a)
        return (x + 1.0) / 2.0 * width + a

    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        return self._forward(state, self.state_mode, self.state_a, self.state_b)

    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        return self._forward(action, self.action_mode, self.action_a, self.action_b)

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        return self._inverse(action, self.action_mode, self.action_a, self.action_b)

    def clip_to_env(self, action: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(action, self.env_high), self.env_low)

    # ----- LeRobot stats <-> buffers ------------------------------------------------------------

    def lerobot_stats(self, state_key: str, action_key: str) -> dict[str, torch.Tensor]:
        """{'observation.state.mean': ..., 'action.std': ...} for the processors' safetensors."""
        out: dict[str, torch.Tensor] = {}
        for key, mode, a, b in (
            (state_key, self.state_mode, self.state_a, self.state_b),
            (action_key, self.action_mode, self.action_a, self.action_b),
        ):
            if mode in STAT_NAMES:
                first, second = STAT_NAMES[mode]
                out[f"{key}.{first}"] = a.detach().cpu().clone()
                out[f"{key}.{second}"] = b.detach().cpu().clone()
        return out

    @torch.no_grad()
    def load_lerobot_stats(
        self, stats: Mapping[str, torch.Tensor], state_key: str, action_key: str, source: str
    ) -> None:
        for key, mode, a, b in (
            (state_key, self.state_mode, self.state_a, self.state_b),
            (action_key, self.action_mode, self.action_a, self.action_b),
        ):
            if mode not in STAT_NAMES:
                continue
            for name, target in zip(STAT_NAMES[mode], (a, b), strict=True):
                full = f"{key}.{name}"
                if full not in stats:
                    raise ConfigError(
                        f"{source} has no '{full}' statistic, which {mode} normalization of "
                        f"{key} needs (present: {sorted(stats)[:8]})"
                    )
                value = stats[full].float().flatten()
                if value.shape != target.shape:
                    raise ConfigError(
                        f"{source}: '{full}' has {value.numel()} entries but the policy's {key} "
                        f"has {target.numel()}; model.obs must select the checkpoint's state/"
                        "action dimensions"
                    )
                target.copy_(value)

    @torch.no_grad()
    def set_stats(self, stats: Mapping[str, torch.Tensor]) -> None:
        """rl_post's stat keys (SFT data stats): state mean/std, action bounds, env bounds."""
        unknown = sorted(set(stats) - set(RL_POST_STAT_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown normalization stat(s) {unknown}; valid keys: {', '.join(RL_POST_STAT_KEYS)}"
            )
        get = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in stats.items()}
        if "state_mean" in get or "state_std" in get:
            if self.state_mode != "MEAN_STD":
                raise ConfigError(
                    f"state stats are mean/std but the policy normalizes STATE with "
                    f"{self.state_mode}; set model.normalization_mapping.STATE=MEAN_STD"
                )
            self.state_a.copy_(get.get("state_mean", self.state_a))
            self.state_b.copy_(get.get("state_std", self.state_b))
        for key in ("env_low", "env_high"):
            if key in get:
                getattr(self, key).copy_(get[key])
        if "action_low" in get or "action_high" in get:
            low = get.get("action_low", self.action_a)
            high = get.get("action_high", self.action_b)
            if self.action_mode == "MEAN_STD":
                self.action_a.copy_((low + high) / 2)
                self.action_b.copy_((high - low) / 2)
            elif self.action_mode != "IDENTITY":
                self.action_a.copy_(low)
                self.action_b.copy_(high)

    def stats(self) -> dict[str, torch.Tensor]:
        """rl_post-style stats (env bounds; non-finite bounds kept as +-inf)."""
        values = {"env_low": self.env_low, "env_high": self.env_high}
        return {k: v.detach().clone() for k, v in values.items()}


def env_bounds(
    low: tuple[float, ...], high: tuple[float, ...], dim: int
) -> tuple[torch.Tensor, ...]:
    if not low and not high:
        inf = torch.full((dim,), math.inf)
        return -inf, inf
    lo, hi = torch.tensor(low, dtype=torch.float32), torch.tensor(high, dtype=torch.float32)
    if lo.shape != (dim,) or hi.shape != (dim,):
        raise ConfigError(
            f"the env reports {lo.numel()}/{hi.numel()} action bounds for {dim} action dims"
        )
    return lo, hi
