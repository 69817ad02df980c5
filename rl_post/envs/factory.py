"""Build vector envs from an `env` config group and compute their ObsSpec up front."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from rl_post.envs.base import VectorEnv
from rl_post.envs.settings import parse_env_settings
from rl_post.envs.spec import ObsSpec


def make_vector_env(
    env_cfg: Mapping[str, Any] | Any,
    num_envs: int | None = None,
    seed_offset: int = 0,
    tasks: Sequence[str] | None = None,
) -> VectorEnv:
    """Validate `env_cfg` and start its backend.

    num_envs / tasks override the config (an env worker owning a shard). seed_offset shifts this
    env's episode seeds (seed = env.seed + seed_offset + cursor), so shards given offsets further
    apart than the number of episodes they will run never share a seed.
    """
    settings = parse_env_settings(env_cfg, num_envs=num_envs, seed_offset=seed_offset, tasks=tasks)
    if settings.backend == "gpu":
        from rl_post.envs.gpu_vector_env import GpuVectorEnv

        return GpuVectorEnv(settings)
    from rl_post.envs.cpu_vector_env import CpuVectorEnv

    return CpuVectorEnv(settings)


def obs_spec_for(env_cfg: Mapping[str, Any] | Any, tasks: Sequence[str] | None = None) -> ObsSpec:
    """The ObsSpec of `make_vector_env(env_cfg)`, so models can be built before env workers.

    Builds one single-env CPU simulator per task in a worker process for a moment (a few
    seconds); the spec does not depend on the backend.
    """
    settings = parse_env_settings(env_cfg, tasks=tasks, check_device=False)
    task_ids = tuple(dict.fromkeys(settings.tasks))
    probe = replace(
        settings,
        tasks=task_ids,
        backend="cpu",
        num_envs=len(task_ids),
        group_size=1,
    )
    from rl_post.envs.cpu_vector_env import CpuVectorEnv

    env = CpuVectorEnv(probe)
    try:
        return env.spec
    finally:
        env.close()
