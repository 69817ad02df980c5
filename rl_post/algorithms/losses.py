"""PPO-family losses. Each returns a scalar: a masked MEAN over the batch it is given.

Normalizing by the batch's own mask count (not by a global count) is what lets the learner split
a batch across ranks and micro-batches: shards of equal size and equal mask count average to
exactly the full-batch gradient; shards with unequal mask counts weigh each decision of a
sparser shard slightly more (the usual token-mean trade-off, as in veRL).

Advantages, returns and values are per decision [B]; log-probs and entropies may carry trailing
grain dimensions ([B], [B, H] or [B, H, A]); per-decision tensors broadcast over them.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from rl_post.algorithms.masked import expand_mask, masked_mean
from rl_post.config import ConfigError

LossAgg = Literal["token-mean", "seq-mean"]
LOSS_AGGS: tuple[str, ...] = ("token-mean", "seq-mean")
KL_ESTIMATORS: tuple[str, ...] = ("k1", "k3")


def broadcast_like(per_decision: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B] -> [B, 1, ...] so it broadcasts against `like` ([B, ...])."""
    return per_decision.reshape(*per_decision.shape, *(1,) * (like.ndim - per_decision.ndim))


def aggregate_loss(per_entry: torch.Tensor, mask: torch.Tensor, agg: str) -> torch.Tensor:
    """token-mean: mean over every masked entry (token, action or chunk, whatever the grain).
    seq-mean: mean over each decision's masked entries, then mean over decisions (veRL's
    "seq-mean-token-mean"). The two agree unless the mask varies inside a decision.
    """
    if agg == "token-mean":
        return masked_mean(per_entry, mask)
    if agg == "seq-mean":
        if per_entry.ndim == 1:
            return masked_mean(per_entry, mask)
        weights = expand_mask(mask, per_entry)
        kept = torch.where(weights != 0, per_entry, torch.zeros_like(per_entry))
        trailing = tuple(range(1, per_entry.ndim))
        weight_per_decision = weights.sum(dim=trailing)
        per_decision = (kept * weights).sum(dim=trailing) / weight_per_decision.clamp_min(
            torch.finfo(per_entry.dtype).tiny
        )
        return masked_mean(per_decision, (weight_per_decision > 0).to(per_entry.dtype))
    raise ConfigError(f"unknown loss_agg '{agg}'; valid choices: {', '.join(LOSS_AGGS)}")


def ppo_policy_loss(
    logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps_low: float,
    clip_eps_high: float,
    dual_clip: float | None = None,
    agg: str = "token-mean",
) -> torch.Tensor:
    """Clipped surrogate -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A), r = exp(new - old).

    dual_clip = c > 1 (Ye et al. 2020) additionally bounds the loss of negative-advantage
    samples by -c A, so a huge ratio on a bad action cannot dominate the batch.
    """
    if logprob.shape != old_logprob.shape:
        raise ValueError(
            f"new log-prob shape {tuple(logprob.shape)} != old {tuple(old_logprob.shape)}; "
            "aggregate both to the same logprob_level"
        )
    if dual_clip is not None and dual_clip <= 1.0:
        raise ConfigError(f"dual_clip must be null or > 1 (e.g. 3.0); got {dual_clip}")
    ratio = torch.exp(logprob - old_logprob)
    adv = broadcast_like(advantages, ratio)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_eps_low, 1.0 + clip_eps_high)
    per_entry = torch.maximum(unclipped, clipped)
    if dual_clip is not None:
        per_entry = torch.where(adv < 0, torch.minimum(per_entry, -adv * dual_clip), per_entry)
    return aggregate_loss(per_entry, mask, agg)


def value_loss(
    value: torch.Tensor,
    old_value: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float | None = None,
    huber_delta: float | None = None,
) -> torch.Tensor:
    """0.5 (V - R)^2 (or Huber with `huber_delta`, which equals it for |V - R| <= delta).

    With clip_eps, PPO2's pessimistic clip: max(err(V), err(V_old + clip(V - V_old, +-eps))).
    """

    def error(v: torch.Tensor) -> torch.Tensor:
        if huber_delta is None:
            return 0.5 * (v - returns) ** 2
        return F.huber_loss(v, returns, reduction="none", delta=huber_delta)

    per_entry = error(value)
    if clip_eps is not None:
        clipped = old_value + torch.clamp(value - old_value, -clip_eps, clip_eps)
        per_entry = torch.maximum(per_entry, error(clipped))
    return masked_mean(per_entry, mask)


def entropy_loss(entropy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """-mean entropy over masked entries: adding coef * this loss maximizes entropy."""
    return -masked_mean(entropy, mask)


def kl_penalty(
    logprob: torch.Tensor,
    ref_logprob: torch.Tensor,
    estimator: str = "k3",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Masked mean estimate of KL(pi || pi_ref) from samples of pi (Schulman's estimators).

    k1 = log pi - log pi_ref (unbiased, can be negative); k3 = exp(-d) + d - 1 with
    d = log pi - log pi_ref (unbiased, always >= 0, lower variance).
    """
    diff = logprob - ref_logprob
    if estimator == "k1":
        per_entry = diff
    elif estimator == "k3":
        per_entry = torch.exp(-diff) + diff - 1.0
    else:
        raise ConfigError(
            f"unknown kl_estimator '{estimator}'; valid choices: {', '.join(KL_ESTIMATORS)}"
        )
    return masked_mean(per_entry, mask)
