"""GPU backend (physx_cuda); runs only where CUDA is available."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from rl_post.config import load_config
from rl_post.envs.factory import make_vector_env

pytestmark = [
    pytest.mark.sim,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU backend needs CUDA"),
]


def gpu_cfg(**overrides):
    cfg = OmegaConf.to_container(load_config("bench", ["env=pickcube_gpu"]).env, resolve=True)
    cfg.update(overrides)
    return cfg


def test_gpu_groups_chunks_and_resets():
    cfg = gpu_cfg(group_size=4, reset_mode="synchronized", max_episode_steps=6, reward_mode="dense")
    with make_vector_env(cfg, num_envs=16) as env:
        assert env.device.type == "cuda"
        state = env.reset()["state"]
        assert state.device.type == "cuda" and state.shape == (16, env.spec.state_dim)
        for g in range(4):
            group = state[4 * g : 4 * g + 4]
            assert torch.allclose(group, group[:1].expand_as(group), atol=1e-5)
        assert not torch.allclose(state[0], state[4])
        actions = torch.rand(16, 4, 7, device="cuda") * 2 - 1
        first = env.step_chunk(actions, k=4)
        assert first.steps.tolist() == [4] * 16 and first.reward.device.type == "cuda"
        second = env.step_chunk(actions, k=4)
        assert second.steps.tolist() == [2] * 16 and second.truncated.all()
        assert len(second.episodes) == 16
        state = second.obs["state"]
        for g in range(4):
            group = state[4 * g : 4 * g + 4]
            assert torch.allclose(group, group[:1].expand_as(group), atol=1e-5)
        assert not torch.allclose(second.final_obs["state"], state)


def test_gpu_same_seeds_reproduce_states():
    with make_vector_env(gpu_cfg(), num_envs=8) as env:
        a = env.reset(seeds=list(range(8)))["state"]
        b = env.reset(seeds=list(range(8)))["state"]
        torch.testing.assert_close(a, b)
