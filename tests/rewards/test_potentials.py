import math

import pytest
import torch

from rl_post.rewards.potentials import pickcube_goal_proximity
from rl_post.rewards.shaping import resolve_potential


def _state_with_obj_to_goal(*offsets: tuple[float, float, float]) -> dict[str, torch.Tensor]:
    state = torch.randn(len(offsets), 42)
    state[:, 39:42] = torch.tensor(offsets)
    return {"state": state}


def test_pickcube_goal_proximity_by_hand():
    phi = pickcube_goal_proximity(
        _state_with_obj_to_goal((0, 0, 0), (0.03, 0, 0.04), (0, 0.025, 0))
    )
    expected = [1.0, 1.0 - math.tanh(0.05 / 0.025), 1.0 - math.tanh(1.0)]
    assert phi.tolist() == pytest.approx(expected, abs=1e-6)


def test_pickcube_goal_proximity_is_resolvable_and_rejects_other_state_widths():
    assert resolve_potential("rl_post.rewards.potentials:pickcube_goal_proximity") is (
        pickcube_goal_proximity
    )
    with pytest.raises(ValueError, match="PickCube-v1's 42-value state"):
        pickcube_goal_proximity({"state": torch.zeros(2, 43)})


def test_pickcube_state_layout_has_obj_to_goal_last():
    gym = pytest.importorskip("gymnasium")
    pytest.importorskip("mani_skill.envs")
    env = gym.make("PickCube-v1", obs_mode="state", control_mode="pd_ee_delta_pose").unwrapped
    try:
        raw, _ = env.reset(seed=3)
        offset = (env.goal_site.pose.p - env.cube.pose.p)[0]
        assert raw.shape[-1] == 42
        assert torch.allclose(raw[0, 39:42], offset)
    finally:
        env.close()
