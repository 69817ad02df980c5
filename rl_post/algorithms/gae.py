"""Generalized Advantage Estimation over chunk decisions, time-major [T, N].

Per decision t of sub-env n (gamma applies once per decision, i.e. per action chunk):
    next_value = 0                        if terminated[t]  (true end: nothing to bootstrap)
               = bootstrap_value[t]       if truncated[t]   (time limit: V(final_obs)), and at
                                          terminations too with bootstrap_terminations
               = V of the next active decision of the same sub-env, or last_value[n] if none
    delta[t]   = reward[t] + gamma * next_value - value[t]
    adv[t]     = delta[t] + gamma * lam * adv[next active decision]   (0 after a done)
    return[t]  = adv[t] + value[t]

Inactive decisions (a sub-env idling while it waits for a synchronized reset) are transparent:
they get zero advantage (return = value), and neither their reward nor their value enters the
recursion of their neighbours: the active decision before them links to the next active one.
"""

from __future__ import annotations

import torch


def gae(
    reward: torch.Tensor,
    value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    bootstrap_value: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
    active: torch.Tensor | None = None,
    bootstrap_terminations: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (advantages, returns), both [T, N] like `reward`.

    bootstrap_terminations: a termination bootstraps V(final obs) like a time limit, as
    ManiSkill's PPO does with partial resets: success ends the episode, not the value of the
    state reached, so finishing early is not worth less than hovering at the goal."""
    if reward.ndim != 2:
        raise ValueError(f"reward must be time-major [T, N]; got shape {tuple(reward.shape)}")
    shape = reward.shape
    for name, tensor in (
        ("value", value),
        ("terminated", terminated),
        ("truncated", truncated),
        ("bootstrap_value", bootstrap_value),
    ):
        if tensor.shape != shape:
            raise ValueError(f"{name} shape {tuple(tensor.shape)} != reward shape {tuple(shape)}")
    if last_value.shape != shape[1:]:
        raise ValueError(f"last_value must be [N]={shape[1]}; got {tuple(last_value.shape)}")
    if active is None:
        active = torch.ones_like(terminated, dtype=torch.bool)
    elif active.shape != shape:
        raise ValueError(f"active shape {tuple(active.shape)} != reward shape {tuple(shape)}")

    done = terminated.bool() | truncated.bool()
    # where the target is 0: true ends only, unless terminations bootstrap as well
    terminated = terminated.bool() & (not bootstrap_terminations)
    active = active.bool()
    advantages = torch.zeros_like(reward)
    # Carries hold the value and advantage of the next ACTIVE decision of each sub-env.
    next_value = last_value.to(reward.dtype)
    next_advantage = torch.zeros_like(next_value)
    zero = torch.zeros_like(next_value)
    for t in range(shape[0] - 1, -1, -1):
        target_value = torch.where(
            terminated[t], zero, torch.where(done[t], bootstrap_value[t], next_value)
        )
        carried = torch.where(done[t], zero, next_advantage)
        delta = reward[t] + gamma * target_value - value[t]
        adv_t = torch.where(active[t], delta + gamma * lam * carried, zero)
        advantages[t] = adv_t
        next_value = torch.where(active[t], value[t], next_value)
        next_advantage = torch.where(active[t], adv_t, next_advantage)
    return advantages, advantages + value
