"""How far an update moved the policy, measured on decisions after the step (pure functions).

A decision's log-ratio is the sum of its token log-ratios (tokens are independent given the
observation, so this is the log-ratio of the whole action chunk / denoising chain). KL(old || new)
per decision is estimated from samples of the old policy with
    k1 = E[-log r]            (unbiased, can be negative on a finite sample)
    k3 = E[(r - 1) - log r]   (unbiased and never negative; Schulman's estimator, CleanRL's
                               approx_kl)
and per token with k3 on the token log-ratios. Statistics over an empty mask are nan.
"""

from __future__ import annotations

import math

import torch

from rl_post.algorithms.logprob import aggregate_logprob
from rl_post.algorithms.masked import expand_mask


def _masked_values(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return values[expand_mask(mask, values) != 0]


def decision_log_ratio(new_logprob: torch.Tensor, old_logprob: torch.Tensor) -> torch.Tensor:
    """[B, H, A] token log-probs -> [B] log-ratio of each whole decision."""
    return aggregate_logprob(new_logprob, "chunk") - aggregate_logprob(old_logprob, "chunk")


def k3(log_ratio: torch.Tensor) -> torch.Tensor:
    """Per-sample (r - 1) - log r, computed stably (expm1)."""
    return torch.expm1(log_ratio) - log_ratio


def update_size_sums(
    new_logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    mask: torch.Tensor,
    level: str,
    clip_eps_low: float,
    clip_eps_high: float,
) -> dict[str, float]:
    """Sums and counts (so shards can be added up) of the post-update statistics.

    new/old log-probs [B, H, A]; mask [B] (0/1); level: the grain of the PPO ratio.
    Returns sum_* entries plus n_decisions / n_tokens / n_ratio and ratio_min / ratio_max.
    """
    keep = mask != 0
    decision = decision_log_ratio(new_logprob, old_logprob)[keep].double()
    token = (new_logprob - old_logprob)[keep].double()
    ratio_log = (aggregate_logprob(new_logprob, level) - aggregate_logprob(old_logprob, level))[
        keep
    ].double()
    ratio = ratio_log.exp()
    outside = (ratio < 1.0 - clip_eps_low) | (ratio > 1.0 + clip_eps_high)
    return {
        "n_decisions": float(decision.numel()),
        "sum_kl_k1": float((-decision).sum()),
        "sum_kl_k3": float(k3(decision).sum()),
        "n_tokens": float(token.numel()),
        "sum_kl_token_k3": float(k3(token).sum()),
        "n_ratio": float(ratio.numel()),
        "sum_ratio": float(ratio.sum()),
        "sum_ratio_sq": float((ratio**2).sum()),
        "sum_clipped": float(outside.sum()),
        "ratio_min": float(ratio.min()) if ratio.numel() else math.inf,
        "ratio_max": float(ratio.max()) if ratio.numel() else -math.inf,
    }


def finish_update_size(sums: dict[str, float]) -> dict[str, float]:
    """From (possibly summed over shards) update_size_sums to the logged statistics."""

    def mean(key: str, count: str) -> float:
        return sums[key] / sums[count] if sums[count] > 0 else math.nan

    ratio_mean = mean("sum_ratio", "n_ratio")
    ratio_sq = mean("sum_ratio_sq", "n_ratio")
    has_ratio = sums["n_ratio"] > 0
    return {
        "post_kl": mean("sum_kl_k3", "n_decisions"),
        "post_kl_k1": mean("sum_kl_k1", "n_decisions"),
        "post_kl_token": mean("sum_kl_token_k3", "n_tokens"),
        "post_ratio_mean": ratio_mean,
        "post_ratio_std": math.sqrt(max(0.0, ratio_sq - ratio_mean**2)) if has_ratio else math.nan,
        "post_ratio_min": sums["ratio_min"] if has_ratio else math.nan,
        "post_ratio_max": sums["ratio_max"] if has_ratio else math.nan,
        "post_clip_frac": mean("sum_clipped", "n_ratio"),
    }


def rms_action_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """Root-mean-square difference of two [B, H, A] action tensors (normalized units)."""
    if before.numel() == 0:
        return math.nan
    return float(((after.double() - before.double()) ** 2).mean().sqrt())


def adapt_lr(
    lr: float, measured_kl: float, target_kl: float, factor: float, lr_min: float, lr_max: float
) -> float:
    """One step of KL-adaptive learning rate: x factor when the post-update KL is below half
    the target, / factor when it is above twice the target (the dead band keeps it stable),
    clamped to [lr_min, lr_max]. A non-finite measurement leaves the lr unchanged."""
    if not math.isfinite(measured_kl):
        return lr
    if measured_kl > 2.0 * target_kl:
        lr = lr / factor
    elif measured_kl < 0.5 * target_kl:
        lr = lr * factor
    return min(max(lr, lr_min), lr_max)
