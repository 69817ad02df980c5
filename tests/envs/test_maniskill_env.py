"""The shared ManiSkill layer in-process: obs-free stepping and termination inside a chunk."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

import rl_post.envs.maniskill_env as mse
from rl_post.config import load_config
from rl_post.envs.settings import parse_env_settings

pytestmark = pytest.mark.sim


def settings(**overrides):
    cfg = OmegaConf.to_container(load_config("bench").env, resolve=True)
    cfg.update(overrides)
    return parse_env_settings(cfg, num_envs=1)


@pytest.fixture(scope="module")
def env():
    s = settings(reward_mode="dense")
    env = mse.make_maniskill_env("PickCube-v1", s)
    yield env
    env.close()


def actions(h: int) -> torch.Tensor:
    return torch.rand(1, h, 7, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_step_without_obs_matches_maniskill_step(env):
    s = settings(reward_mode="dense")
    a = actions(3)
    env.reset(seed=9)
    expected = [env.step(a[:, t]) for t in range(3)]
    env.reset(seed=9)
    got = [mse.step_without_obs(env, a[:, t]) for t in range(3)]
    for (_obs, reward, *_), out in zip(expected, got, strict=True):
        torch.testing.assert_close(out.reward, reward.float())
    torch.testing.assert_close(mse.current_obs(env, s)["state"], expected[-1][0])


@pytest.mark.parametrize("ignore_terminations", [False, True])
def test_termination_inside_chunk_stops_stepping(env, monkeypatch, ignore_terminations):
    s = settings(reward_mode="dense", ignore_terminations=ignore_terminations)
    real_step = mse.step_without_obs
    calls = []

    def succeed_on_second_step(e, action):
        out = real_step(e, action)
        calls.append(1)
        if len(calls) == 2:
            out.terminated[:] = True
            out.success[:] = True
        return out

    a = actions(4)
    env.reset(seed=2)
    for t in range(2):
        real_step(env, a[:, t])
    obs_after_two = mse.current_obs(env, s)["state"]

    env.reset(seed=2)
    monkeypatch.setattr(mse, "step_without_obs", succeed_on_second_step)
    out = mse.run_chunk_batched(env, s, a, torch.tensor([4]))
    assert out.success_any.item()
    if ignore_terminations:
        assert out.steps.item() == 4 and not out.terminated.item() and not out.success.item()
    else:
        assert out.steps.item() == 2 and out.terminated.item() and out.success.item()
        torch.testing.assert_close(out.obs["state"], obs_after_two)


@pytest.mark.sim
def test_reset_does_not_leak_contacts_of_the_previous_episode():
    import gymnasium as gym
    from mani_skill.examples.motionplanning.panda.solutions import solvePickCube

    from rl_post.envs.maniskill_env import refresh_contacts

    env = gym.make(
        "PickCube-v1",
        obs_mode="state",
        control_mode="pd_joint_pos",
        sim_backend="cpu",
        render_backend="none",
    ).unwrapped
    try:
        env.reset(seed=5)
        solvePickCube(env, seed=5, debug=False, vis=False)
        assert bool(env.agent.is_grasping(env.cube))  # the episode ends holding the cube
        env.reset(seed=6)
        before = env.get_obs()
        refresh_contacts(env)
        assert not bool(env.agent.is_grasping(env.cube))
        after = env.get_obs()
        assert after[0, 18] == 0 and before[0, 18] == 1  # is_grasped entry of PickCube's state
        keep = [i for i in range(after.shape[1]) if i != 18]
        assert torch.allclose(after[:, keep], before[:, keep], atol=1e-6)  # nothing moved
    finally:
        env.close()


def test_milestones_are_the_tasks_boolean_info_flags_reached_in_the_chunk(env):
    s = settings(reward_mode="dense", ignore_terminations=True)
    env.reset(seed=9)
    out = mse.run_chunk_batched(env, s, actions(3), torch.tensor([3]))
    assert set(out.milestones) == {"is_obj_placed", "is_robot_static", "is_grasped"}
    assert all(v.dtype == torch.bool and v.shape == (1,) for v in out.milestones.values())
    n = 2
    info = {
        "success": torch.ones(n, dtype=torch.bool),
        "fail": torch.zeros(n, dtype=torch.bool),
        "is_grasped": torch.tensor([True, False]),
        "elapsed_steps": torch.ones(n, dtype=torch.int32),
        "tcp_to_obj": torch.zeros(n),
        "scene_flag": torch.tensor(True),
    }
    assert list(mse.milestone_flags(info, n)) == ["is_grasped"]
