"""LeRobot's normalization formulas (normalize_processor.py), per mode."""

import math

import pytest
import torch

from rl_post.config import ConfigError
from rl_post.models.vla.normalization import LeRobotNormalizer


def _norm(mode: str) -> LeRobotNormalizer:
    n = LeRobotNormalizer(2, 2, mode, mode, torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0]))
    n.state_a.copy_(torch.tensor([1.0, -1.0]))
    n.state_b.copy_(torch.tensor([3.0, 1.0]))
    n.action_a.copy_(torch.tensor([1.0, -1.0]))
    n.action_b.copy_(torch.tensor([3.0, 1.0]))
    return n


def test_mean_std_hand_values_and_eps():
    n = _norm("MEAN_STD")
    x = torch.tensor([[4.0, 0.0]])
    assert torch.allclose(n.normalize_state(x), torch.tensor([[3 / (3 + 1e-8), 1 / (1 + 1e-8)]]))
    assert torch.allclose(
        n.unnormalize_action(torch.tensor([[1.0, 1.0]])), torch.tensor([[4.0, 0.0]])
    )


@pytest.mark.parametrize("mode", ["MIN_MAX", "QUANTILES", "QUANTILE10"])
def test_range_modes_map_onto_minus_one_one(mode):
    n = _norm(mode)
    x = torch.tensor([[1.0, -1.0], [3.0, 1.0], [2.0, 0.0]])
    assert torch.allclose(
        n.normalize_action(x), torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    )
    assert torch.allclose(n.unnormalize_action(n.normalize_action(x)), x)


def test_default_actions_map_the_env_box_and_clip():
    n = LeRobotNormalizer(
        1, 2, "MEAN_STD", "MEAN_STD", torch.tensor([-2.0, -math.inf]), torch.tensor([2.0, math.inf])
    )
    assert torch.allclose(
        n.unnormalize_action(torch.tensor([[1.0, 1.0]])), torch.tensor([[2.0, 1.0]])
    )
    assert torch.equal(n.clip_to_env(torch.tensor([[5.0, 9.0]])), torch.tensor([[2.0, 9.0]]))


def test_lerobot_stats_round_trip_and_errors():
    n = _norm("MEAN_STD")
    stats = n.lerobot_stats("observation.state", "action")
    assert set(stats) == {
        "observation.state.mean",
        "observation.state.std",
        "action.mean",
        "action.std",
    }
    fresh = _norm("MEAN_STD")
    fresh.state_a.zero_()
    fresh.load_lerobot_stats(stats, "observation.state", "action", "ckpt")
    assert torch.equal(fresh.state_a, n.state_a)
    with pytest.raises(ConfigError, match="'action.std'"):
        fresh.load_lerobot_stats(
            {k: v for k, v in stats.items() if k != "action.std"},
            "observation.state",
            "action",
            "ckpt",
        )
    with pytest.raises(ConfigError, match="3 entries"):
        fresh.load_lerobot_stats(
            {**stats, "action.mean": torch.zeros(3)}, "observation.state", "action", "ckpt"
        )
