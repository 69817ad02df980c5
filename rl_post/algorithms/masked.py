"""Masked reductions shared by the losses, the statistics and the advantage code.

A mask marks which entries carry a learning signal. It may have fewer dimensions than the values
it masks (a [B] decision mask over [B, H, A] token log-probs): it is broadcast over the trailing
dimensions. Masked-out entries are replaced by zero before reducing, so garbage (even inf/nan) in
idle decisions never reaches a loss or a statistic.
"""

from __future__ import annotations

import torch


def expand_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast `mask` (shape a prefix of `like.shape`) to `like.shape`, as `like.dtype`."""
    if mask.shape != like.shape[: mask.ndim]:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} must be a prefix of the masked tensor's shape "
            f"{tuple(like.shape)} (e.g. a [B] decision mask for [B, H, A] log-probs)"
        )
    trailing = (1,) * (like.ndim - mask.ndim)
    return mask.reshape(*mask.shape, *trailing).expand_as(like).to(like.dtype)


def masked_sum_and_count(
    values: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if mask is None:
        return values.sum(), values.new_tensor(float(values.numel()))
    weights = expand_mask(mask, values)
    kept = torch.where(weights != 0, values, torch.zeros_like(values))
    return (kept * weights).sum(), weights.sum()


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Weighted mean over the masked entries; 0 (still differentiable) when the mask is empty.

    An empty mask happens legitimately, e.g. when dynamic sampling drops every group of a batch;
    a zero loss then means "no update", not a nan that would poison the optimizer state.
    """
    total, count = masked_sum_and_count(values, mask)
    return total / count.clamp_min(torch.finfo(values.dtype).tiny)


def masked_var(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Sample (Bessel-corrected, n - 1) variance over the masked entries; 0 for fewer than 2."""
    mean = masked_mean(values, mask)
    sq_dev_sum, count = masked_sum_and_count((values - mean) ** 2, mask)
    return sq_dev_sum / (count - 1).clamp_min(1.0)
