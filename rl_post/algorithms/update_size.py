"""How far an update moved the policy, measured on decisions after the step (pure functions).

A decision's log-ratio is the sum of its token log-ratios (tokens are independent given the
observation, so this is the log-ratio of the whole action chunk / denoising chain). KL(old || new)
per decision is estimated from samples of the old policy with
    k1 = E[-log r]            (unbiased, can be negative on a finite sample)
    k3 = E[(r - 1) - log r]   (unbiased and never negative; Schulman's estimator, CleanRL's
                               approx_kl)
and per token with k3 on the token log-ratios. Statistics over an empty mask are nan.

For Gaussian policies the KL is also computed in closed form from the step Gaussians before and
after the update and split into the part the means' move makes and the part the stds' change
makes (kl_part_sums), so a KL-adaptive lr can steer the mean's step alone while a separately
trained noise head shrinks sigma. By the chain rule of KL, the sum of the per-step Gaussian KLs at
the stored chain states is an unbiased estimate of the whole chain's KL.
"""

from __future__ import annotations

import math

import torch

from rl_post.algorithms.logprob import aggregate_logprob
from rl_post.algorithms.masked import expand_mask
from rl_post.models.policy import StepGaussians


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


def gaussian_kl_parts(
    mean_old: torch.Tensor, std_old: torch.Tensor, mean_new: torch.Tensor, std_new: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Elementwise KL(N(m0, s0^2) || N(m1, s1^2)) as (mean part, std part), both >= 0:
    mean part = (m1 - m0)^2 / (2 s1^2), std part = log(s1 / s0) + s0^2 / (2 s1^2) - 1/2
    (their sum is the KL; the std part is 0 iff s1 = s0)."""
    mean_part = (mean_new - mean_old) ** 2 / (2.0 * std_new * std_new)
    # with x = log(s0^2 / s1^2): log(s1/s0) + s0^2/(2 s1^2) - 1/2 = (e^x - 1 - x) / 2 = k3(x) / 2
    std_part = 0.5 * k3(2.0 * (torch.log(std_old) - torch.log(std_new)))
    return mean_part, std_part


def kl_part_sums(
    before: StepGaussians, after: StepGaussians, mask: torch.Tensor
) -> dict[str, float]:
    """Sums and counts (shards add up) of the closed-form KL split into mean and std parts.

    before/after: the same decisions' step Gaussians [B, H, S, A] with the old and new weights
    (active [B, S] from either: the stored chains fix which steps were sampled); mask [B] (0/1).
    A decision's KL is summed over its active steps and entries; tokens are its [H, A] entries
    (the grain of post_kl_token).
    """
    keep = mask != 0
    mean_part, std_part = gaussian_kl_parts(
        before.mean[keep].double(),
        before.std[keep].double(),
        after.mean[keep].double(),
        after.std[keep].double(),
    )
    active = before.active[keep][:, None, :, None]
    mean_sum = torch.where(active, mean_part, 0.0).sum()
    std_sum = torch.where(active, std_part, 0.0).sum()
    decisions = int(keep.sum())
    return {
        "n_part_decisions": float(decisions),
        "n_part_tokens": float(decisions * before.mean.shape[1] * before.mean.shape[3]),
        "sum_kl_mean_part": float(mean_sum),
        "sum_kl_std_part": float(std_sum),
    }


def finish_kl_parts(sums: dict[str, float]) -> dict[str, float]:
    """From (summed) kl_part_sums to post_kl_{mean,std}_part (per decision) and
    post_kl_token_{mean,std}_part (per token); nan when nothing was measured."""

    def mean(key: str, count: str) -> float:
        return sums[key] / sums[count] if sums.get(count, 0.0) > 0 else math.nan

    return {
        "post_kl_mean_part": mean("sum_kl_mean_part", "n_part_decisions"),
        "post_kl_std_part": mean("sum_kl_std_part", "n_part_decisions"),
        "post_kl_token_mean_part": mean("sum_kl_mean_part", "n_part_tokens"),
        "post_kl_token_std_part": mean("sum_kl_std_part", "n_part_tokens"),
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


def adaptive_kl_key(kl_grain: str, kl_part: str) -> str:
    """The post-update statistic algo.adaptive_lr steers on: KL per decision or per token
    (kl_grain), whole or its means' part only (kl_part: total | mean)."""
    grain = {"decision": "post_kl", "token": "post_kl_token"}[kl_grain]
    return {"total": grain, "mean": f"{grain}_mean_part"}[kl_part]
