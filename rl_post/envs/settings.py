"""Validated, typed view of an `env` config group (configs/env/*.yaml)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rl_post.config import ConfigError
from rl_post.envs.registry import (
    instruction_for,
    validate_backend,
    validate_control_mode,
    validate_obs_mode,
    validate_reset_mode,
    validate_reward_mode,
    validate_start_method,
    validate_task,
)

# Used when an env config written before these keys existed omits them; configs/env/*.yaml
# set them explicitly.
DEFAULT_START_METHOD = "forkserver"
DEFAULT_WORKER_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class EnvSettings:
    tasks: tuple[str, ...]
    backend: str
    num_envs: int
    obs_mode: str
    cameras: tuple[str, ...]
    image_size: tuple[int, int]  # (height, width)
    control_mode: str
    reward_mode: str
    max_episode_steps: int
    ignore_terminations: bool
    reset_mode: str
    group_size: int
    seed: int
    seed_offset: int
    sim_device: str
    start_method: str
    worker_timeout_s: float

    @property
    def wants_rgb(self) -> bool:
        return self.obs_mode in ("rgb", "state_rgb")

    @property
    def num_groups(self) -> int:
        return self.num_envs // self.group_size

    def task_of(self, env_index: int) -> str:
        """Tasks cycle per group, so every member of a GRPO group runs the same task."""
        return self.tasks[(env_index // self.group_size) % len(self.tasks)]

    def instructions(self) -> list[str]:
        return [instruction_for(self.task_of(i)) for i in range(self.num_envs)]


def _get(cfg: Mapping[str, Any] | Any, key: str, default: Any = ...) -> Any:
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    if value is ...:
        raise ConfigError(f"env config is missing key '{key}'; see configs/env/pickcube.yaml")
    return value


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ConfigError(f"env.{key} must be a positive integer, got {value!r}")
    return int(value)


def parse_env_settings(
    env_cfg: Mapping[str, Any] | Any,
    num_envs: int | None = None,
    seed_offset: int = 0,
    tasks: Sequence[str] | None = None,
    check_device: bool = True,
) -> EnvSettings:
    """Validate `env_cfg`; `num_envs`/`tasks` override the config (used for env-worker shards)."""
    raw_tasks = list(tasks if tasks is not None else _get(env_cfg, "tasks"))
    if isinstance(raw_tasks, str) or not raw_tasks:
        raise ConfigError("env.tasks must be a non-empty list of task ids, e.g. [PickCube-v1]")
    task_ids = tuple(validate_task(t) for t in raw_tasks)
    backend_value = _get(env_cfg, "backend")
    backend = validate_backend(backend_value) if check_device else str(backend_value)
    n = _positive_int(num_envs if num_envs is not None else _get(env_cfg, "num_envs"), "num_envs")
    group_size = _positive_int(_get(env_cfg, "group_size", 1), "group_size")
    if n % group_size != 0:
        raise ConfigError(
            f"env.num_envs={n} is not divisible by env.group_size={group_size}; pick num_envs as "
            f"a multiple of the group size (e.g. {group_size * max(1, n // group_size)})"
        )
    if backend == "gpu" and len(task_ids) > 1:
        raise ConfigError(
            "env.backend=gpu simulates one task per env worker; give one task in env.tasks "
            "(run one env worker per task) or use env.backend=cpu for mixed tasks"
        )
    height, width = (int(v) for v in _get(env_cfg, "image_size"))
    if height < 1 or width < 1:
        raise ConfigError(f"env.image_size must be [height, width] > 0, got {[height, width]}")
    cameras = tuple(str(c) for c in _get(env_cfg, "cameras", ["base_camera"]))
    obs_mode = validate_obs_mode(_get(env_cfg, "obs_mode"))
    if obs_mode != "state" and not cameras:
        raise ConfigError(f"env.obs_mode={obs_mode} needs at least one camera in env.cameras")
    return EnvSettings(
        tasks=task_ids,
        backend=backend,
        num_envs=n,
        obs_mode=obs_mode,
        cameras=cameras,
        image_size=(height, width),
        control_mode=validate_control_mode(_get(env_cfg, "control_mode")),
        reward_mode=validate_reward_mode(_get(env_cfg, "reward_mode")),
        max_episode_steps=_positive_int(_get(env_cfg, "max_episode_steps"), "max_episode_steps"),
        ignore_terminations=bool(_get(env_cfg, "ignore_terminations", False)),
        reset_mode=validate_reset_mode(_get(env_cfg, "reset_mode", "independent")),
        group_size=group_size,
        seed=int(_get(env_cfg, "seed", 0)),
        seed_offset=int(seed_offset),
        sim_device=str(_get(env_cfg, "sim_device", "cuda")),
        start_method=validate_start_method(_get(env_cfg, "start_method", DEFAULT_START_METHOD)),
        worker_timeout_s=float(_get(env_cfg, "worker_timeout_s", DEFAULT_WORKER_TIMEOUT_S)),
    )
