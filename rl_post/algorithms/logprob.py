"""Aggregating [..., H, A] log-probabilities to the grain the PPO ratio is taken at.

Policies return one log-prob per action dimension of every action in the chunk (a "token").
Summing gives the joint log-prob of an action (over its A dims) or of the whole chunk (over H and
A), since the dimensions are sampled independently given the context. The ratio exp(new - old)
at a coarser grain is the product of the finer ratios, so it clips more aggressively.
"""

from __future__ import annotations

from typing import Literal

import torch

from rl_post.config import ConfigError

LogprobLevel = Literal["token", "action", "chunk"]
LOGPROB_LEVELS: tuple[str, ...] = ("token", "action", "chunk")


def aggregate_logprob(logprob: torch.Tensor, level: str) -> torch.Tensor:
    """[..., H, A] -> [..., H, A] (token) / [..., H] (action) / [...] (chunk), by summing."""
    if logprob.ndim < 2:
        raise ValueError(
            f"log-probs must end in [H, A] (actions per chunk, action dims); got shape "
            f"{tuple(logprob.shape)}"
        )
    if level == "token":
        return logprob
    if level == "action":
        return logprob.sum(dim=-1)
    if level == "chunk":
        return logprob.sum(dim=(-2, -1))
    raise ConfigError(
        f"unknown logprob_level '{level}'; valid choices: {', '.join(LOGPROB_LEVELS)}"
    )
