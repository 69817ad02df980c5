"""CPU backend against real ManiSkill simulators (worker processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf

from rl_post.config import load_config
from rl_post.envs.cpu_vector_env import EnvWorkerError
from rl_post.envs.cpu_worker import PARENT_CHECK_INTERVAL_S
from rl_post.envs.factory import make_vector_env, obs_spec_for
from rl_post.envs.registry import instruction_for

pytestmark = pytest.mark.sim


def env_cfg(**overrides):
    cfg = OmegaConf.to_container(load_config("bench").env, resolve=True)
    cfg.update(overrides)
    return cfg


def random_actions(n: int, h: int, seed: int) -> torch.Tensor:
    return torch.rand(n, h, 7, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def dense_env():
    env = make_vector_env(env_cfg(reward_mode="dense", max_episode_steps=6), num_envs=2)
    yield env
    env.close()


def test_same_seeds_give_identical_observations(dense_env):
    first = dense_env.reset(seeds=[5, 5])["state"]
    assert first.dtype == torch.float32 and first.shape == (2, dense_env.spec.state_dim)
    assert torch.equal(first[0], first[1])
    other = dense_env.reset(seeds=[5, 6])["state"]
    assert torch.equal(other[0], first[0]) and not torch.equal(other[0], other[1])


def test_chunk_reward_equals_sum_of_single_steps(dense_env):
    actions = random_actions(2, 4, seed=0)
    dense_env.reset(seeds=[3, 4])
    chunked = dense_env.step_chunk(actions, k=4)
    dense_env.reset(seeds=[3, 4])
    singles = [dense_env.step_chunk(actions[:, t : t + 1], k=1) for t in range(4)]
    assert chunked.steps.tolist() == [4, 4]
    assert (chunked.reward != 0).all()
    torch.testing.assert_close(chunked.reward, sum(r.reward for r in singles))
    torch.testing.assert_close(chunked.obs["state"], singles[-1].obs["state"])


def test_truncation_inside_chunk_auto_resets_and_keeps_final_obs(dense_env):
    dense_env.reset(seeds=[10, 11])
    dense_env.set_seed_cursor(0)
    first = dense_env.step_chunk(random_actions(2, 4, seed=1), k=4)
    assert not first.done.any()
    second = dense_env.step_chunk(random_actions(2, 4, seed=2), k=4)  # limit 6 hits at step 2
    assert second.steps.tolist() == [2, 2]
    assert second.truncated.all() and not second.terminated.any()
    assert [(e.env_index, e.seed, e.length) for e in second.episodes] == [(0, 10, 6), (1, 11, 6)]
    # the worker processes pass the task's info flags on, reached or not, per episode
    assert all(
        set(e.milestones) == {"is_grasped", "is_obj_placed", "is_robot_static"}
        for e in second.episodes
    )
    assert not torch.equal(second.final_obs["state"], second.obs["state"])
    # the auto-reset used the next seeds of the cursor (env.seed=0 + cursor 0, 1)
    assert dense_env.seed_cursor() == 2
    assert torch.equal(second.obs["state"], dense_env.reset(seeds=[0, 1])["state"])


@pytest.fixture(scope="module")
def group_env():
    cfg = env_cfg(group_size=2, reset_mode="synchronized", max_episode_steps=3, seed=40)
    env = make_vector_env(cfg, num_envs=4)
    yield env
    env.close()


def test_synchronized_groups_share_initial_states(group_env):
    for state in (group_env.reset()["state"], _run_to_group_reset(group_env)):
        assert torch.equal(state[0], state[1]) and torch.equal(state[2], state[3])
        assert not torch.equal(state[0], state[2])


def _run_to_group_reset(env) -> torch.Tensor:
    result = env.step_chunk(random_actions(4, 4, seed=3), k=4)
    assert result.truncated.all() and result.steps.tolist() == [3, 3, 3, 3]
    assert [e.seed for e in result.episodes] == [40, 40, 41, 41]
    return result.obs["state"]


def test_rgb_multitask_batching():
    cfg = env_cfg(tasks=["PickCube-v1", "PushCube-v1"], obs_mode="rgb", image_size=[32, 48])
    with make_vector_env(cfg, num_envs=2) as env:
        assert env.spec.cameras == ("base_camera",) and env.spec.image_size == (32, 48)
        obs = env.reset()
        assert obs["rgb"].shape == (2, 1, 32, 48, 3) and obs["rgb"].dtype == torch.uint8
        assert obs["rgb"].float().std() > 0  # a rendered image, not a blank buffer
        assert obs["state"].shape == (2, env.spec.state_dim)
        assert obs["instruction"] == [
            instruction_for("PickCube-v1"),
            instruction_for("PushCube-v1"),
        ]
        result = env.step_chunk(random_actions(2, 2, seed=4), k=2)
        assert result.obs["rgb"].shape == (2, 1, 32, 48, 3)


def test_obs_spec_for_matches_env_and_pads_multitask_state():
    single = obs_spec_for(env_cfg())
    assert single.action_dim == 7 and single.state_dim == 42 and not single.has_rgb
    both = obs_spec_for(env_cfg(tasks=["PushCube-v1", "StackCube-v1"]))
    assert both.state_dim == 48  # StackCube's 48 > PushCube's 35; PushCube rows are zero-padded
    assert len(both.action_low) == 7


def test_idle_worker_survives_and_crashed_worker_raises_clear_error():
    env = make_vector_env(env_cfg(), num_envs=1)
    env.reset()
    time.sleep(PARENT_CHECK_INTERVAL_S + 0.5)  # idle workers check their owner is alive
    assert env.step_chunk(random_actions(1, 2, seed=5), k=2).steps.tolist() == [2]
    worker = env._processes[0]
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(EnvWorkerError, match="env worker 0 .*died"):
        env.step_chunk(random_actions(1, 2, seed=5), k=2)
    assert not worker.is_alive()
    env.close()  # idempotent after the failure


ORPHAN_SCRIPT = """
import time
from rl_post.config import load_config
from rl_post.envs.factory import make_vector_env
env = make_vector_env(load_config("bench").env, num_envs=1)
print(*[p.pid for p in env._processes], flush=True)
time.sleep(120)
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # zombies have exited
    except FileNotFoundError:
        return False


def test_workers_exit_when_owner_is_killed():
    owner = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    try:
        worker_pids = [int(p) for p in owner.stdout.readline().split()]
        assert worker_pids and all(_running(p) for p in worker_pids)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 5 * PARENT_CHECK_INTERVAL_S
    while any(_running(p) for p in worker_pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_running(p) for p in worker_pids)
