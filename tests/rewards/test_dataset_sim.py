"""Labelling real PickCube observations with the simulator's success (starts ManiSkill)."""

import numpy as np
import pytest

from rl_post.config import load_config
from rl_post.rewards.dataset import label_demos, label_rollouts
from rl_post.sft.collect import collect_main

pytestmark = pytest.mark.sim


def test_replayed_demos_end_in_success_and_rollouts_are_labelled(tmp_path):
    demo_file = tmp_path / "demos.h5"
    collect_cfg = load_config(
        "collect",
        [f"collect.path={demo_file}", "collect.num_demos=1", "collect.num_workers=0"],
    )
    assert collect_main(collect_cfg) == 0
    env_cfg = load_config("reward_train").env
    demos = label_demos(env_cfg, str(demo_file), max_episodes=None)
    assert demos.counts["demos"]["episodes"] == 1
    for episode in np.unique(demos.episode):
        labels = demos.label[demos.episode == episode]
        assert labels[-1] and not labels[0]  # planner demos succeed at their end only
    rollouts = label_rollouts(
        env_cfg, num_envs=2, decisions=3, execute_steps=2, policy_checkpoint=None, seed=7
    )
    assert rollouts.state.shape == (6, demos.state.shape[1])
    assert set(rollouts.episode.tolist()) <= {0, 1, 2, 3}
