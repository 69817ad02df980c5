"""Hand-made segments and tiny classifiers for reward tests."""

from __future__ import annotations

from pathlib import Path

import torch

from rl_post.data.segment import Segment
from rl_post.rewards.classifier import ClassifierConfig, SuccessClassifier, save_classifier


def bools(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


def make_segment(
    reward: list[list[float]],
    success: list[list[int]],
    terminated: list[list[int]] | None = None,
    truncated: list[list[int]] | None = None,
    active: list[list[int]] | None = None,
    start_state: torch.Tensor | None = None,
    end_state: torch.Tensor | None = None,
    state_dim: int = 3,
) -> Segment:
    r = torch.tensor(reward, dtype=torch.float32)
    t, n = r.shape
    zeros = [[0] * n for _ in range(t)]
    ones = [[1] * n for _ in range(t)]
    obs = {"state": start_state if start_state is not None else torch.zeros(t, n, state_dim)}
    end_obs = {"state": end_state} if end_state is not None else {}
    return Segment(
        obs=obs,
        instructions=["pick"] * n,
        actions=torch.zeros(t, n, 2, 4),
        stored={},
        logprob=torch.zeros(t, n, 2, 4),
        value=torch.zeros(t, n),
        reward=r,
        terminated=bools(terminated or zeros),
        truncated=bools(truncated or zeros),
        active=bools(active or ones),
        bootstrap_value=torch.zeros(t, n),
        last_value=torch.zeros(n),
        version=torch.zeros(t, n, dtype=torch.long),
        group_id=torch.zeros(t, n, dtype=torch.long),
        success=bools(success),
        steps=torch.full((t, n), 4, dtype=torch.long),
        end_obs=end_obs,
    )


def threshold_classifier(path: Path, state_dim: int, coordinate: int = 0) -> Path:
    """A hand-set classifier: logit = 20 * state[coordinate] (P > 0.5 iff the coordinate > 0)."""
    model = SuccessClassifier(ClassifierConfig(state_dim=state_dim, hidden=()))
    with torch.no_grad():
        linear = model.head[0]
        linear.weight.zero_()
        linear.weight[0, coordinate] = 20.0
        linear.bias.zero_()
    return save_classifier(model, path)
