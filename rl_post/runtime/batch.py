"""From a merged segment and its advantages to the flat batch the learner trains on."""

from __future__ import annotations

from typing import Any

import torch

from rl_post.data.segment import Segment


def advantage_inputs(segment: Segment) -> dict[str, torch.Tensor]:
    return {
        "reward": segment.reward,
        "value": segment.value,
        "terminated": segment.terminated,
        "truncated": segment.truncated,
        "active": segment.active,
        "bootstrap_value": segment.bootstrap_value,
        "last_value": segment.last_value,
        "group_id": segment.group_id,
        "success": segment.success,
    }


def flatten_batch(
    segment: Segment, advantages: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor
) -> dict[str, Any]:
    """Keep only decisions with mask > 0 and flatten [T, N] to [B]."""
    keep = (mask > 0) & segment.active
    t_index, n_index = keep.nonzero(as_tuple=True)
    obs = {k: v[t_index, n_index] for k, v in segment.obs.items()}
    obs["instruction"] = [segment.instructions[n] for n in n_index.tolist()]
    return {
        "obs": obs,
        "stored": {k: v[t_index, n_index] for k, v in segment.stored.items()},
        "actions": segment.actions[t_index, n_index],
        "logprob_old": segment.logprob[t_index, n_index],
        "advantages": advantages[t_index, n_index].float(),
        "returns": returns[t_index, n_index].float(),
        "values_old": segment.value[t_index, n_index].float(),
        "mask": torch.ones(t_index.numel()),
        "version": segment.version[t_index, n_index],
        # episode group of each decision: gradient-SNR splits keep a group (GRPO) or an
        # episode (PPO, groups of one) in one part, since its decisions are correlated
        "split_key": segment.group_id[t_index, n_index],
    }


def batch_size(batch: dict[str, Any]) -> int:
    return int(batch["mask"].numel())
