"""Trajectory bookkeeping and group-relative advantages (GRPO, RLOO, dynamic sampling).

A trajectory is a maximal run of active decisions of one sub-env that ends at a done
(terminated or truncated) or at the segment end. Its return R is the undiscounted sum of its
decision rewards; it succeeded if any of its decisions reports success (success_once, the usual
ManiSkill metric). A trajectory whose last decision is not a done is incomplete: its return is
unknown, so group methods exclude it and report how many there were.

Group methods assume every trajectory starts inside the segment (synchronized resets, and a
segment at least one episode long); a trajectory carried over from a previous segment would be
scored on its tail only.

Std convention: the group std is the SAMPLE std (Bessel-corrected, divide by n - 1), as
torch.std and veRL/TRL's GRPO use. A group of [1, 0, 0, 1] has mean 0.5 and std sqrt(1/3).
Groups with fewer than two complete trajectories have no baseline: their advantages are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Trajectories:
    index: torch.Tensor  # [T, N] int64 trajectory of each decision, -1 where inactive
    returns: torch.Tensor  # [K] undiscounted sum of rewards
    complete: torch.Tensor  # [K] bool, ends with a done inside the segment
    group: torch.Tensor  # [K] int64 group id (shared initial state)
    success: torch.Tensor  # [K] bool, success at any decision

    @property
    def num_trajectories(self) -> int:
        return int(self.returns.numel())

    @property
    def num_incomplete(self) -> int:
        return int((~self.complete).sum())


def find_trajectories(
    reward: torch.Tensor,
    active: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    group_id: torch.Tensor,
    success: torch.Tensor,
) -> Trajectories:
    """Split [T, N] decisions into trajectories (numbered sub-env by sub-env, then in time)."""
    if reward.ndim != 2:
        raise ValueError(f"reward must be time-major [T, N]; got shape {tuple(reward.shape)}")
    num_envs, steps = reward.shape[1], reward.shape[0]
    # Env-major [N, T] so that one flat cumulative sum numbers trajectories.
    act = active.bool().T
    done = (terminated.bool() | truncated.bool()).T
    first_col = torch.zeros(num_envs, 1, dtype=torch.bool, device=reward.device)
    prev_active = torch.cat([first_col, act[:, :-1]], dim=1)
    prev_done = torch.cat([first_col, done[:, :-1]], dim=1)
    starts = (act & (~prev_active | prev_done)).reshape(-1)
    flat_active = act.reshape(-1)
    flat_index = torch.where(flat_active, torch.cumsum(starts.long(), 0) - 1, -1)
    num = int(starts.sum())

    idx = flat_index[flat_active]
    returns = torch.zeros(num, dtype=reward.dtype, device=reward.device)
    returns.index_add_(0, idx, reward.T.reshape(-1)[flat_active])
    # A done always closes its trajectory, so a trajectory is complete iff it contains one.
    done_count = torch.zeros(num, dtype=torch.long, device=reward.device)
    done_count.index_add_(0, idx, done.reshape(-1)[flat_active].long())
    success_count = torch.zeros(num, dtype=torch.long, device=reward.device)
    success_count.index_add_(0, idx, success.bool().T.reshape(-1)[flat_active].long())

    groups_flat = group_id.long().T.reshape(-1)
    group = groups_flat[starts]
    if not torch.equal(groups_flat[flat_active], group[idx]):
        raise ValueError(
            "group_id changes inside a trajectory; a sub-env must keep its group id from reset "
            "to done (give a new id per group per episode at reset)"
        )
    return Trajectories(
        index=flat_index.reshape(num_envs, steps).T,
        returns=returns,
        complete=done_count > 0,
        group=group,
        success=success_count > 0,
    )


def broadcast_to_decisions(
    per_trajectory: torch.Tensor, index: torch.Tensor, fill: float = 0.0
) -> torch.Tensor:
    """[K] per-trajectory values -> [T, N], `fill` where index is -1 (inactive)."""
    gathered = per_trajectory[index.clamp_min(0)]
    return torch.where(index >= 0, gathered, torch.full_like(gathered, fill))


def reward_to_go(reward: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[T, N] undiscounted sum of a decision's own and later rewards within its trajectory
    (0 where inactive). Rewards earned before a decision are not its consequence."""
    out = torch.zeros_like(reward)
    carry = torch.zeros_like(reward[0])
    for t in range(reward.shape[0] - 1, -1, -1):
        same = index[t] >= 0
        if t + 1 < reward.shape[0]:
            continues = same & (index[t + 1] == index[t])
        else:
            continues = torch.zeros_like(same)
        carry = torch.where(same, reward[t] + torch.where(continues, carry, 0.0), 0.0)
        out[t] = carry
    return out


def step_in_trajectory(index: torch.Tensor) -> torch.Tensor:
    """[T, N] position of each decision inside its trajectory (0 at its first), -1 where inactive.
    Group members start together (synchronized resets), so equal positions are equal times."""
    out = torch.full_like(index, -1)
    position = torch.zeros_like(index[0])
    for t in range(index.shape[0]):
        starts = (index[t] >= 0) & ((index[t - 1] != index[t]) if t > 0 else True)
        position = torch.where(starts, torch.zeros_like(position), position + 1)
        out[t] = torch.where(index[t] >= 0, position, -1)
    return out


@dataclass
class _GroupSums:
    inverse: torch.Tensor  # [K] position of each trajectory's group
    count: torch.Tensor  # [num_groups]
    total: torch.Tensor  # [num_groups] sum of returns


def _group_sums(returns: torch.Tensor, group: torch.Tensor) -> _GroupSums:
    unique, inverse = torch.unique(group, return_inverse=True)
    count = torch.zeros(unique.numel(), dtype=returns.dtype, device=returns.device)
    count.index_add_(0, inverse, torch.ones_like(returns))
    total = torch.zeros_like(count).index_add_(0, inverse, returns)
    return _GroupSums(inverse=inverse, count=count, total=total)


def grpo_advantages(
    returns: torch.Tensor, group: torch.Tensor, std_normalize: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """A_i = (R_i - mean_g) / (std_g + eps) (sample std), or R_i - mean_g without std_normalize."""
    sums = _group_sums(returns, group)
    mean = sums.total / sums.count
    centered = returns - mean[sums.inverse]
    sq_dev = torch.zeros_like(sums.count).index_add_(0, sums.inverse, centered**2)
    std = torch.sqrt(sq_dev / (sums.count - 1).clamp_min(1.0))
    advantages = centered / (std[sums.inverse] + eps) if std_normalize else centered
    has_baseline = sums.count[sums.inverse] >= 2
    return torch.where(has_baseline, advantages, torch.zeros_like(advantages))


def rloo_advantages(returns: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """A_i = R_i - mean_{j != i} R_j over the other members of i's group."""
    sums = _group_sums(returns, group)
    count = sums.count[sums.inverse]
    others_mean = (sums.total[sums.inverse] - returns) / (count - 1).clamp_min(1.0)
    return torch.where(count >= 2, returns - others_mean, torch.zeros_like(returns))


@dataclass
class DynamicSampling:
    keep: torch.Tensor  # [K] bool, trajectory belongs to a kept group
    groups_total: int
    groups_dropped: int
    groups_dropped_uniform: int  # every return in the group equal (no learning signal)
    groups_dropped_band: int  # success rate outside [min, max] (and not already uniform)


def dynamic_sampling_mask(
    returns: torch.Tensor,
    success: torch.Tensor,
    group: torch.Tensor,
    min_success_rate: float = 0.0,
    max_success_rate: float = 1.0,
) -> DynamicSampling:
    """Keep groups whose returns differ and whose success rate lies in [min, max] (inclusive)."""
    sums = _group_sums(returns, group)
    num_groups = int(sums.count.numel())
    group_max = torch.full_like(sums.total, -torch.inf).scatter_reduce(
        0, sums.inverse, returns, reduce="amax"
    )
    group_min = torch.full_like(sums.total, torch.inf).scatter_reduce(
        0, sums.inverse, returns, reduce="amin"
    )
    successes = torch.zeros_like(sums.count).index_add_(0, sums.inverse, success.to(returns.dtype))
    rate = successes / sums.count
    uniform = group_max == group_min
    out_of_band = (rate < min_success_rate) | (rate > max_success_rate)
    dropped = uniform | out_of_band
    return DynamicSampling(
        keep=~dropped[sums.inverse],
        groups_total=num_groups,
        groups_dropped=int(dropped.sum()),
        groups_dropped_uniform=int(uniform.sum()),
        groups_dropped_band=int((out_of_band & ~uniform).sum()),
    )
