"""The two entry points the learner and trainer call: advantages for a batch, loss for a shard.

`cfg` is the algo config node (`cfg.algo` of the training config, configs/algo/<name>.yaml) or any
mapping with the same keys; it is validated on every call (cheap, catches bad overrides early).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from rl_post.algorithms.gae import gae
from rl_post.algorithms.group import (
    broadcast_to_decisions,
    dynamic_sampling_mask,
    find_trajectories,
    grpo_advantages,
    reward_to_go,
    rloo_advantages,
    step_in_trajectory,
)
from rl_post.algorithms.logprob import aggregate_logprob
from rl_post.algorithms.losses import entropy_loss, kl_penalty, ppo_policy_loss, value_loss
from rl_post.algorithms.masked import masked_mean, masked_var
from rl_post.algorithms.registry import validate_algo_cfg
from rl_post.algorithms.stats import (
    approx_kl,
    clip_fraction,
    explained_variance,
    normalize_advantages,
    ratio_mean_max,
)
from rl_post.algorithms.update_size import decision_log_ratio
from rl_post.models.policy import EvalOutput

ADVANTAGE_INPUT_KEYS = (
    "reward",
    "value",
    "terminated",
    "truncated",
    "active",
    "bootstrap_value",
    "group_id",
    "success",
    "last_value",
)
LOSS_BATCH_KEYS = ("logprob_old", "advantages", "returns", "values_old", "mask")


def _require(data: Mapping[str, torch.Tensor], keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise KeyError(f"{what} lacks keys {missing}; expected {list(keys)}")


def _group_advantages(
    data: Mapping[str, torch.Tensor], cfg: Mapping[str, Any]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
    """Per-decision (advantages, returns, mask, stats) from trajectory returns in groups."""
    traj = find_trajectories(
        data["reward"],
        data["active"],
        data["terminated"],
        data["truncated"],
        data["group_id"],
        data["success"],
    )
    complete = traj.complete
    returns_c, group_c = traj.returns[complete], traj.group[complete]
    std_normalize, eps = bool(cfg["group_std_normalize"]), float(cfg["adv_eps"])

    def relative(values: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        if cfg["advantage"] == "grpo":
            return grpo_advantages(values, keys, std_normalize=std_normalize, eps=eps)
        return rloo_advantages(values, keys)

    per_step = cfg["group_return"] == "reward_to_go"
    if per_step:
        # A_{i,t} = G_{i,t} - baseline of the group's trajectories at the same step t, where
        # G_{i,t} is the reward-to-go: credit for what came after the decision, not before.
        rtg = reward_to_go(data["reward"], traj.index)
        step = step_in_trajectory(traj.index)
        in_complete = (traj.index >= 0) & complete[traj.index.clamp_min(0)]
        keys = traj.group[traj.index.clamp_min(0)] * (step.shape[0] + 1) + step
        decision_adv = torch.zeros_like(rtg)
        decision_adv[in_complete] = relative(rtg[in_complete], keys[in_complete])
    else:
        adv_c = relative(returns_c, group_c)

    sampling = cfg["dynamic_sampling"]
    ds = dynamic_sampling_mask(
        returns_c,
        traj.success[complete],
        group_c,
        float(sampling["min_success_rate"]),
        float(sampling["max_success_rate"]),
    )
    keep_c = ds.keep if sampling["enabled"] else torch.ones_like(ds.keep)
    trains = torch.zeros_like(traj.complete)
    trains[complete] = keep_c
    if per_step:
        advantages, returns = decision_adv, rtg
    else:
        per_traj_adv = torch.zeros_like(traj.returns)
        per_traj_adv[complete] = adv_c
        advantages = broadcast_to_decisions(per_traj_adv, traj.index)
        returns = broadcast_to_decisions(traj.returns, traj.index)
    mask = broadcast_to_decisions(trains.to(advantages.dtype), traj.index)
    num_complete = int(complete.sum())
    stats = {
        "trajectories": float(num_complete),
        "incomplete_trajectories": float(traj.num_incomplete),
        "groups_total": float(ds.groups_total),
        "groups_dropped": float(ds.groups_dropped if sampling["enabled"] else 0),
        "groups_dropped_uniform": float(ds.groups_dropped_uniform if sampling["enabled"] else 0),
        "groups_dropped_band": float(ds.groups_dropped_band if sampling["enabled"] else 0),
        "traj_return_mean": float(returns_c.mean()) if num_complete else math.nan,
        "traj_success_rate": float(traj.success[complete].float().mean())
        if num_complete
        else math.nan,
    }
    return advantages, returns, mask, stats


def compute_advantages(data: dict[str, torch.Tensor], cfg: Any) -> dict:
    """Advantages for one update batch of [T, N] decisions.

    Returns {"advantages", "returns", "mask" (float, decisions to train on), "stats"}.
    Rewards are multiplied by cfg.reward_scale first (value targets of order 1 for the critic).
    - gae: mask = active decisions; returns are the GAE value targets.
    - grpo/rloo: mask = decisions of complete trajectories in kept groups (dynamic sampling);
      returns are each decision's trajectory return R (there is no critic to fit).
    adv_mean/adv_std describe the advantages over the mask BEFORE the optional batch-level
    normalization (after it they are 0 and 1 by construction).
    """
    validate_algo_cfg(cfg)
    _require(data, ADVANTAGE_INPUT_KEYS, "advantage input")
    scale = float(cfg["reward_scale"])
    if scale != 1.0:
        data = {**data, "reward": data["reward"] * scale}
    if cfg["advantage"] == "gae":
        advantages, returns = gae(
            data["reward"],
            data["value"],
            data["terminated"],
            data["truncated"],
            data["bootstrap_value"],
            data["last_value"],
            gamma=float(cfg["gamma"]),
            lam=float(cfg["lam"]),
            active=data["active"],
            bootstrap_terminations=bool(cfg["bootstrap_terminations"]),
        )
        mask = data["active"].to(advantages.dtype)
        stats: dict[str, float] = {}
    else:
        advantages, returns, mask, stats = _group_advantages(data, cfg)

    has_any = float(mask.sum()) > 0
    stats["train_decisions"] = float(mask.sum())
    stats["adv_mean"] = float(masked_mean(advantages, mask)) if has_any else math.nan
    stats["adv_std"] = float(masked_var(advantages, mask).sqrt()) if has_any else math.nan
    stats["return_mean"] = float(masked_mean(returns, mask)) if has_any else math.nan
    if cfg["normalize_advantages"]:
        advantages = normalize_advantages(advantages, mask, eps=float(cfg["adv_eps"]))
    return {"advantages": advantages, "returns": returns, "mask": mask, "stats": stats}


def policy_surrogate(
    logprob: torch.Tensor, batch: dict[str, torch.Tensor], cfg: Any
) -> torch.Tensor:
    """The clipped PPO surrogate alone (no value, entropy or KL term) for [B, H, A] log-probs at
    cfg.logprob_level: the policy-gradient part of compute_loss, also used to measure the
    gradient's signal-to-noise ratio."""
    level = cfg["logprob_level"]
    return ppo_policy_loss(
        aggregate_logprob(logprob, level),
        aggregate_logprob(batch["logprob_old"], level),
        batch["advantages"],
        batch["mask"],
        clip_eps_low=float(cfg["clip_eps_low"]),
        clip_eps_high=float(cfg["clip_eps_high"]),
        dual_clip=None if cfg["dual_clip"] is None else float(cfg["dual_clip"]),
        agg=cfg["loss_agg"],
    )


def compute_loss(
    new: EvalOutput,
    batch: dict[str, torch.Tensor],
    cfg: Any,
    ref_logprob: torch.Tensor | None = None,
    critic_only: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss (masked MEAN over this batch, see losses.py) and float statistics.

    total = policy + value_coef * value (critic algorithms, when new.value is given)
            - entropy_coef * entropy + kl_coef * kl (when ref_logprob is given and kl_coef > 0).
    critic_only=True (critic warm-up) keeps only the value term: no policy gradient at all, so
    no optimizer momentum builds up in the policy while it is meant to stand still.
    `kl_decision` is the k3 estimate of KL(old || new) per whole decision at the current weights
    (before this optimizer step): what algo.target_kl early stopping compares against.
    Log-probs ([B, H, A]) are summed to cfg.logprob_level before the ratio; the entropy bonus is
    the mean per-token entropy (independent of chunk size). Stats that do not apply (value_loss
    and explained_var without a critic, kl without a reference) are nan.
    """
    spec = validate_algo_cfg(cfg)
    _require(batch, LOSS_BATCH_KEYS, "loss batch")
    if new.logprob.shape != batch["logprob_old"].shape:
        raise ValueError(
            f"new log-prob shape {tuple(new.logprob.shape)} != stored logprob_old shape "
            f"{tuple(batch['logprob_old'].shape)}; both must be [B, H, A]"
        )
    level = cfg["logprob_level"]
    mask = batch["mask"]
    logprob = aggregate_logprob(new.logprob, level)
    old_logprob = aggregate_logprob(batch["logprob_old"], level)

    policy = policy_surrogate(new.logprob, batch, cfg)
    total = policy * 0.0 if critic_only else policy
    stats: dict[str, float] = {"policy_loss": float(policy.detach())}

    fits_critic = spec.uses_critic and new.value is not None
    if fits_critic:
        critic = value_loss(
            new.value,
            batch["values_old"],
            batch["returns"],
            mask,
            clip_eps=None if cfg["value_clip"] is None else float(cfg["value_clip"]),
            huber_delta=None if cfg["huber_delta"] is None else float(cfg["huber_delta"]),
        )
        total = total + float(cfg["value_coef"]) * critic
        stats["value_loss"] = float(critic.detach())
    else:
        stats["value_loss"] = math.nan

    entropy_term = entropy_loss(new.entropy, mask)
    if float(cfg["entropy_coef"]) != 0.0 and not critic_only:
        total = total + float(cfg["entropy_coef"]) * entropy_term
    stats["entropy"] = -float(entropy_term.detach())

    if ref_logprob is not None:
        kl = kl_penalty(logprob, aggregate_logprob(ref_logprob, level), cfg["kl_estimator"], mask)
        if float(cfg["kl_coef"]) > 0.0 and not critic_only:
            total = total + float(cfg["kl_coef"]) * kl
        stats["kl"] = float(kl.detach())
    else:
        stats["kl"] = math.nan

    with torch.no_grad():
        log_ratio = logprob.detach() - old_logprob
        ratio = torch.exp(log_ratio)
        stats["clip_frac"] = clip_fraction(
            ratio, mask, float(cfg["clip_eps_low"]), float(cfg["clip_eps_high"])
        )
        stats["approx_kl"] = approx_kl(log_ratio, mask)
        stats["kl_decision"] = approx_kl(
            decision_log_ratio(new.logprob.detach(), batch["logprob_old"]), mask
        )
        stats["kl_token"] = approx_kl(new.logprob.detach() - batch["logprob_old"], mask)
        stats["ratio_mean"], stats["ratio_max"] = ratio_mean_max(ratio, mask)
        stats["explained_var"] = (
            explained_variance(new.value.detach(), batch["returns"], mask)
            if fits_critic
            else math.nan
        )
    stats["total_loss"] = float(total.detach())
    return total, stats
