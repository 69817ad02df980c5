import math

import pytest
import torch

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models.normalization import Normalizer, compute_normalization_stats

SPEC = ObsSpec(state_dim=2, action_dim=2, action_low=(-1.0, 0.0), action_high=(1.0, 4.0))


def test_defaults_follow_env_bounds():
    norm = Normalizer(SPEC)
    action = torch.tensor([[0.5, 3.0]])
    assert norm.normalize_action(action)[0].tolist() == pytest.approx([0.5, 0.5])
    assert torch.allclose(norm.unnormalize_action(norm.normalize_action(action)), action)
    assert norm.clip_to_env(torch.tensor([[2.0, -1.0]])).tolist() == [[1.0, 0.0]]
    assert torch.equal(
        norm.normalize_state(torch.tensor([[3.0, -2.0]])), torch.tensor([[3.0, -2.0]])
    )


def test_unbounded_env_normalizes_to_unit_range_and_never_clips():
    norm = Normalizer(ObsSpec(state_dim=1, action_dim=1))
    assert norm.normalize_action(torch.tensor([0.5])).item() == pytest.approx(0.5)
    assert norm.clip_to_env(torch.tensor([100.0])).item() == 100.0
    assert math.isinf(norm.env_high.item())


def test_set_stats_and_shape_errors():
    norm = Normalizer(SPEC)
    norm.set_stats({"state_mean": [1.0, 2.0], "state_std": [2.0, 4.0], "action_low": [0.0, 0.0]})
    assert norm.normalize_state(torch.tensor([3.0, 6.0])).tolist() == pytest.approx([1.0, 1.0])
    with pytest.raises(ConfigError, match="shape"):
        norm.set_stats({"state_mean": [1.0, 2.0, 3.0]})
    with pytest.raises(ConfigError, match="valid keys"):
        norm.set_stats({"mean": [0.0, 0.0]})


def test_compute_stats_min_max_and_quantiles():
    states = torch.tensor([[0.0, 1.0], [2.0, 1.0]])
    actions = torch.linspace(0, 100, 101).unsqueeze(1).repeat(1, 2)
    actions[:, 1] = 3.0  # constant dim gets a non-zero width
    stats = compute_normalization_stats(states, actions)
    assert stats["state_mean"].tolist() == pytest.approx([1.0, 1.0])
    assert stats["state_std"].tolist() == pytest.approx([1.0, 1e-6])  # constant dim: floored
    assert stats["action_low"].tolist() == [0.0, 2.0]
    assert stats["action_high"].tolist() == [100.0, 4.0]
    q = compute_normalization_stats(states, actions, quantiles=(0.01, 0.99))
    assert q["action_low"][0].item() == pytest.approx(1.0)
    assert q["action_high"][0].item() == pytest.approx(99.0)
