"""Training diagnostics (floats for logging) and batch-level advantage normalization.

Statistics over an empty mask are nan ("not measured"), never a made-up 0.
"""

from __future__ import annotations

import math

import torch

from rl_post.algorithms.masked import expand_mask, masked_mean, masked_sum_and_count, masked_var


def _masked_mean_or_nan(values: torch.Tensor, mask: torch.Tensor) -> float:
    total, count = masked_sum_and_count(values, mask)
    return float(total / count) if float(count) > 0 else math.nan


def clip_fraction(
    ratio: torch.Tensor, mask: torch.Tensor, clip_eps_low: float, clip_eps_high: float
) -> float:
    """Fraction of masked entries whose ratio lies outside [1 - eps_low, 1 + eps_high]."""
    outside = (ratio < 1.0 - clip_eps_low) | (ratio > 1.0 + clip_eps_high)
    return _masked_mean_or_nan(outside.to(ratio.dtype), mask)


def approx_kl(log_ratio: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of (ratio - 1) - log ratio, the k3 estimate of KL(old || new) (always >= 0)."""
    return _masked_mean_or_nan(torch.expm1(log_ratio) - log_ratio, mask)


def ratio_mean_max(ratio: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    weights = expand_mask(mask, ratio)
    if not bool((weights != 0).any()):
        return math.nan, math.nan
    return _masked_mean_or_nan(ratio, mask), float(ratio[weights != 0].max())


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(R - V) / Var(R) over masked decisions; nan when Var(R) is 0 (undefined)."""
    if float(expand_mask(mask, returns).sum()) < 2:
        return math.nan
    var_returns = float(masked_var(returns, mask))
    if var_returns == 0.0:
        return math.nan
    return 1.0 - float(masked_var(returns - values, mask)) / var_returns


def normalize_advantages(advantages: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """(A - mean) / (std + eps) over the masked decisions (sample std); 0 where unmasked."""
    mean = masked_mean(advantages, mask)
    std = torch.sqrt(masked_var(advantages, mask))
    normalized = (advantages - mean) / (std + eps)
    return torch.where(expand_mask(mask, advantages) != 0, normalized, torch.zeros_like(normalized))
