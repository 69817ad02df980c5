"""Config validation and seed bookkeeping (no simulator)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from rl_post.config import ConfigError, load_config
from rl_post.envs.gpu_vector_env import copy_plan
from rl_post.envs.registry import TASKS, instruction_for
from rl_post.envs.seeding import SeedSchedule
from rl_post.envs.settings import parse_env_settings

REQUIRED_TASKS = {
    "PickCube-v1",
    "PushCube-v1",
    "PullCube-v1",
    "StackCube-v1",
    "PegInsertionSide-v1",
    "LiftPegUpright-v1",
    "PokeCube-v1",
    "PlaceSphere-v1",
}


def env_cfg(**overrides):
    cfg = OmegaConf.to_container(load_config("bench").env, resolve=True)
    cfg.update(overrides)
    return cfg


def test_registry_covers_tasks_with_instructions():
    assert REQUIRED_TASKS <= set(TASKS)
    assert all(instruction_for(t) for t in REQUIRED_TASKS)
    assert instruction_for("PickCube-v1") != instruction_for("PushCube-v1")


def test_env_config_files_parse():
    for name in ("pickcube", "pushcube", "pullcube", "stackcube", "multitask"):
        settings = parse_env_settings(load_config("bench", [f"env={name}"]).env)
        assert settings.num_envs % settings.group_size == 0
    gpu = load_config("bench", ["env=pickcube_gpu"]).env
    assert parse_env_settings(gpu, check_device=False).backend == "gpu"


@pytest.mark.parametrize(
    ("key", "value", "valid_example"),
    [
        ("tasks", ["PickCube-v9"], "PushCube-v1"),
        ("obs_mode", "depth", "state_rgb"),
        ("control_mode", "pd_magic", "pd_ee_delta_pose"),
        ("reward_mode", "shaped", "normalized_dense"),
        ("backend", "tpu", "cpu"),
        ("reset_mode", "whenever", "synchronized"),
    ],
)
def test_unknown_values_list_valid_choices(key, value, valid_example):
    with pytest.raises(ConfigError) as err:
        parse_env_settings(env_cfg(**{key: value}))
    message = str(err.value)
    assert str(value if not isinstance(value, list) else value[0]) in message
    assert "valid choices" in message and valid_example in message


def test_gpu_backend_without_cuda_says_use_cpu(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ConfigError, match="env.backend=cpu"):
        parse_env_settings(env_cfg(backend="gpu"))


def test_num_envs_must_divide_into_groups():
    with pytest.raises(ConfigError, match="not divisible by env.group_size=4"):
        parse_env_settings(env_cfg(num_envs=6, group_size=4))
    settings = parse_env_settings(env_cfg(group_size=2), num_envs=6)
    assert settings.num_groups == 3


def test_tasks_cycle_per_group():
    settings = parse_env_settings(
        env_cfg(tasks=["PickCube-v1", "PushCube-v1"], group_size=2), num_envs=6
    )
    assert [settings.task_of(i) for i in range(6)] == [
        "PickCube-v1",
        "PickCube-v1",
        "PushCube-v1",
        "PushCube-v1",
        "PickCube-v1",
        "PickCube-v1",
    ]


def test_seed_schedule():
    seeds = SeedSchedule(base=10, num_envs=4, group_size=2)
    assert seeds.next_group_seeds() == [10, 10, 11, 11]
    assert seeds.next_single_seeds(3) == [12, 13, 14]
    assert seeds.cursor == 5


def test_gpu_copy_plan_maps_equal_seeds_to_first_holder():
    assert copy_plan([0, 1, 2, 3], [7, 7, 8, 8]) == ([0, 2], [1, 3])
    assert copy_plan([2, 5], [1, 2]) == ([], [])
    assert copy_plan([1, 4, 6], [3, 9, 3]) == ([1], [6])
